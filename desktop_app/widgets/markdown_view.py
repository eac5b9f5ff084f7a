"""An answer shown formatted: the Markdown a model writes (headings, lists, **bold**, `code`, fenced
code, tables, links) laid out as such, with Qt's own CommonMark reader (md4c, GitHub dialect).

A model's answer is text from outside LoRA Deck (an adapter from the Hub wrote it), so:
- raw HTML is shown as text, never as markup (see plain_text.py for what Qt's HTML layout can be made
  to do): the reader runs with MarkdownNoHTML;
- an image is never loaded: `![x](/dev/zero)` or a FIFO would hang the GUI thread reading it, a
  local picture would show what the model should not: each image becomes its alt text in brackets, and
  loadResource answers nothing for any name;
- a link opens in the browser only when clicked and only for http(s) (the address is the tooltip);
- the cost is bounded: a table of thousands of rows costs Qt quadratic time (12 kB of rows: 0.24 s,
  48 kB: 2.3 s), one 40 kB paragraph of alternating emphasis 0.4 s. A text that is over SLOW_MS to
  read and lay out is shown as plain text from then on (an answer being written is read again at each
  paint), and `worth_formatting` refuses texts whose shape is known to be slow before trying.

Code blocks wrap instead of running off the side (the column has no horizontal scrolling). The height
follows the text at the column's width like a word-wrapped label: a second document, laid out at the
widths Qt's layouts ask about, answers `heightForWidth` (remembered per width, as WrappedLabel does).
"""
from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QPoint, QSize, Qt, QUrl
from PySide6.QtGui import (
    QAction,
    QColor,
    QDesktopServices,
    QFontDatabase,
    QGuiApplication,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextOption,
    QTextTable,
)
from PySide6.QtWidgets import QFrame, QMenu, QTextBrowser, QWidget

from ..plain_text import plain_tip
from .wrapped_label import HeightMemo, wrapping_policy

_F = QTextDocument.MarkdownFeature
FEATURES = _F(_F.MarkdownDialectGitHub.value | _F.MarkdownNoHTML.value)
SLOW_MS = 60                   # reading and laying out a text past this: plain text from then on
MAX_TABLE_ROWS = 200           # Qt's table import and layout grow with the square of the rows
MAX_PARAGRAPH = 10_000         # … and that of one paragraph full of formatting (20 kB: 0.09 s, 40 kB: 0.4 s)
SETTLE_MAX_CHARS = 64_000      # a finished answer up to this long is formatted once (~0.1 s at 32 kB)
CODE_BLOCK = QTextFormat.Property.UserProperty.value + 1     # marks the lines of a code block
CODE_SHADE = QColor(128, 128, 128, 40)   # grey, mostly transparent: a shade on light and dark alike
OPENED_SCHEMES = ("http", "https")


def worth_formatting(text: str) -> bool:
    """False for a text whose shape makes Qt's Markdown layout slow (checked in one pass, before any)."""
    rows = 0
    paragraph = 0
    for line in text.splitlines():
        stripped = line.strip()
        rows += stripped.startswith("|")
        paragraph = paragraph + len(line) if stripped else 0
        if rows > MAX_TABLE_ROWS or paragraph > MAX_PARAGRAPH:
            return False
    return True


def read_markdown(doc: QTextDocument, text: str) -> None:
    """`text` read into `doc` as Markdown, made safe to show (see the module's note)."""
    doc.setMarkdown(text, FEATURES)
    _images_to_text(doc)
    _wrap_code(doc)
    _tidy_tables(doc)


def _images_to_text(doc: QTextDocument) -> None:
    found = []                               # (position, length, alt text), replaced from the end
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt = fragment.charFormat()
            if fmt.isImageFormat():
                image = fmt.toImageFormat()
                alt = str(image.property(QTextCharFormat.Property.ImageAltText) or "").strip()
                found.append((fragment.position(), fragment.length(), alt or "image"))
            it += 1
        block = block.next()
    cursor = QTextCursor(doc)
    for position, length, alt in reversed(found):
        cursor.setPosition(position)
        cursor.setPosition(position + length, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(f"[{alt}]", QTextCharFormat())


def _wrap_code(doc: QTextDocument) -> None:
    """Code (fenced or indented) wraps at the column's edge, stands on a shade that reads in light and
    dark themes, and is in the fixed-pitch font (Qt's reader leaves indented code proportional)."""
    block = doc.begin()
    cursor = QTextCursor(doc)
    fixed = QTextCharFormat()
    fixed.setFontFixedPitch(True)
    fixed.setFontFamilies([QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()])
    while block.isValid():
        fmt = block.blockFormat()
        if (fmt.nonBreakableLines() or fmt.hasProperty(QTextFormat.Property.BlockCodeFence)
                or fmt.hasProperty(QTextFormat.Property.BlockCodeLanguage)):
            fmt.setNonBreakableLines(False)
            fmt.setBackground(CODE_SHADE)
            fmt.setProperty(CODE_BLOCK, True)
            cursor.setPosition(block.position())
            cursor.setBlockFormat(fmt)
            cursor.setPosition(block.position() + block.length() - 1, QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(fixed)
        block = block.next()


def _tidy_tables(doc: QTextDocument) -> None:
    for frame in doc.rootFrame().childFrames():
        if isinstance(frame, QTextTable):
            fmt = frame.format()
            fmt.setCellPadding(4)
            fmt.setCellSpacing(0)
            fmt.setBorderCollapse(True)
            fmt.setBorderBrush(CODE_SHADE.darker(150))
            frame.setFormat(fmt)
            for column in range(frame.columns()):
                _drop_leading_empty_block(frame.cellAt(0, column))


def _drop_leading_empty_block(cell) -> None:
    """Qt's reader starts a table that follows a code block with an empty line in its first cell (and
    the cell's text loses the header's bold): that line is dropped and the header made bold again."""
    first = cell.firstCursorPosition().block()
    if first.text() or first.position() + first.length() >= cell.lastCursorPosition().position() + 1:
        return
    cursor = cell.firstCursorPosition()
    cursor.deleteChar()                       # joins the empty line with the text after it
    cursor.setPosition(cell.firstCursorPosition().position())
    cursor.setPosition(cell.lastCursorPosition().position(), QTextCursor.MoveMode.KeepAnchor)
    bold = QTextCharFormat()
    bold.setFontWeight(700)
    cursor.mergeCharFormat(bold)
    block = cell.firstCursorPosition().block()
    fmt = block.blockFormat()
    fmt.setTopMargin(0)
    fmt.setBottomMargin(0)
    cursor.setBlockFormat(fmt)


class MarkdownView(QTextBrowser):
    """Read-only formatted text that grows with its content (no scroll bars of its own), for a column
    of messages; or, with `scrolls`, a box of a height set from outside that scrolls. `setText(markdown)`
    and `text()` as a label has them; `formatted` says how the text is shown."""

    def __init__(self, text: str = "", parent: QWidget | None = None, scrolls: bool = False):
        super().__init__(parent)
        self._scrolls = scrolls
        self._source = ""
        self._heights = HeightMemo(self._measured_height)
        self.formatted = True                # False once a text was too slow, or refused, to format
        self._slow = False                   # … and it was for the time it took (settle() tries again)
        self._measure: QTextDocument | None = None    # laid out at the widths layouts ask about
        self._link_colour: QColor | None = None       # the application's, when the text was read
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        if not scrolls:
            self.setFrameShape(QFrame.Shape.NoFrame)
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.viewport().setAutoFillBackground(False)
        self.setOpenLinks(False)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.anchorClicked.connect(self._open_link)
        self.highlighted.connect(self._show_link)
        if not scrolls:
            self.setSizePolicy(wrapping_policy())
        self.setText(text)

    # -- content --
    def text(self) -> str:
        return self._source

    def setText(self, text: str) -> None:                           # noqa: N802 (QLabel's name)
        """Read and tidied in a document of its own, then shown: edits to the shown document would each
        lay it out again (six times the cost at 8 kB)."""
        self._source = text
        started = time.perf_counter()
        if self.formatted and not worth_formatting(text):
            self.formatted = False
        if self.formatted:
            self._show(self._read_formatted(text))
            if self.isVisible() and not self._scrolls:
                self.heightForWidth(self.width())    # the layout this text costs, timed with its reading
            if (time.perf_counter() - started) * 1000 <= SLOW_MS:
                return
            self.formatted, self._slow = False, True
        doc = self._new_document()
        doc.setPlainText(text)
        self._show(doc)

    def settle(self) -> None:
        """The text is final (the answer is written): if it went plain only because reading it again at
        every paint was too slow, it is formatted now, once."""
        if self._slow and len(self._source) <= SETTLE_MAX_CHARS and worth_formatting(self._source):
            self.formatted, self._slow = True, False
            self._show(self._read_formatted(self._source))

    def _read_formatted(self, text: str) -> QTextDocument:
        doc = self._new_document()
        self._link_colour = QGuiApplication.palette().color(QPalette.ColorRole.Link)
        read_markdown(doc, text)
        return doc

    def _new_document(self) -> QTextDocument:
        doc = QTextDocument(self)            # a child: the view deletes the one it replaces
        doc.setUndoRedoEnabled(False)
        doc.setDocumentMargin(0)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        doc.setDefaultTextOption(option)
        doc.setDefaultFont(self.font())
        return doc

    def _show(self, doc: QTextDocument) -> None:
        self._heights.clear()
        if not self._scrolls:
            measure = doc.clone(self)
            measure.setDefaultFont(self.font())
            measure.setDocumentMargin(0)
            measure.setDefaultTextOption(doc.defaultTextOption())
            if self._measure is not None:
                self._measure.deleteLater()
            self._measure = measure
        self.setDocument(doc)
        self.updateGeometry()

    def loadResource(self, kind: int, name: QUrl):                  # noqa: N802 (Qt's name)
        return None                                                  # nothing is ever fetched or read

    # -- size: the whole text, at the width given --
    def hasHeightForWidth(self) -> bool:                            # noqa: N802
        return not self._scrolls

    def heightForWidth(self, width: int) -> int:                    # noqa: N802
        return self._heights.height(width)

    def _measured_height(self, width: int) -> int:
        if self._measure is None:
            return 0
        self._measure.setTextWidth(max(1, width))
        return int(self._measure.size().height() + 0.999)

    def sizeHint(self) -> QSize:                                    # noqa: N802
        if self._scrolls:
            return super().sizeHint()
        width = max(self.width(), 200)
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:                             # noqa: N802
        if self._scrolls:
            return super().minimumSizeHint()
        return QSize(80, self.fontMetrics().lineSpacing())

    def changeEvent(self, event) -> None:                           # noqa: N802
        if event.type() in (event.Type.FontChange, event.Type.StyleChange):
            for doc in (self.document(), self._measure):
                if doc is not None:
                    doc.setDefaultFont(self.font())
            self._heights.clear()
            self.updateGeometry()
        super().changeEvent(event)
        # Links take the application's link colour when the text is read: a theme switched (light ↔
        # dark) reads it again, or its links would keep the old theme's colour.
        if event.type() == QEvent.Type.PaletteChange and self.formatted and self._source \
                and QGuiApplication.palette().color(QPalette.ColorRole.Link) != self._link_colour:
            self.setText(self._source)

    # -- code --
    def code_block_at(self, pos: QPoint) -> str | None:
        """The text of the code block at `pos` (viewport coordinates), all its lines; None outside one."""
        block = self.cursorForPosition(pos).block()
        if not block.blockFormat().boolProperty(CODE_BLOCK):
            return None
        while block.previous().isValid() and block.previous().blockFormat().boolProperty(CODE_BLOCK):
            block = block.previous()
        lines = []
        while block.isValid() and block.blockFormat().boolProperty(CODE_BLOCK):
            lines.append(block.text())
            block = block.next()
        return "\n".join(lines)

    def context_menu(self, pos: QPoint) -> QMenu:
        """Qt's menu (Copy, Copy Link Location, Select All), with Copy code block over a code block."""
        menu = self.createStandardContextMenu(pos)
        code = self.code_block_at(pos)
        if code is not None:
            act = QAction("Copy code block", menu)
            act.triggered.connect(lambda: QGuiApplication.clipboard().setText(code))
            menu.insertAction(menu.actions()[0] if menu.actions() else None, act)
        return menu

    def contextMenuEvent(self, event) -> None:                      # noqa: N802
        menu = self.context_menu(event.pos())
        menu.exec(event.globalPos())
        menu.deleteLater()

    def wheelEvent(self, event) -> None:                            # noqa: N802
        if self._scrolls:
            super().wheelEvent(event)
        else:
            event.ignore()               # the whole text is shown: the wheel scrolls the chat around it

    # -- links --
    def _open_link(self, url: QUrl) -> None:
        if url.scheme().lower() in OPENED_SCHEMES:
            QDesktopServices.openUrl(url)

    def _show_link(self, url: QUrl) -> None:
        shown = url.toString() if not url.isEmpty() else ""
        if shown and url.scheme().lower() not in OPENED_SCHEMES:
            shown += " (not opened: only web links open)"
        self.setToolTip(plain_tip(shown))

