"""Text from outside LoRA Deck is shown as text, never as markup.

Qt guesses: a QLabel, a QMessageBox or a tooltip whose first line contains an HTML tag is laid out as
rich text. An adapter's name or metadata, a Hub model card, a model's note or answer, an error quoting
a file name: any of them can hold a tag, by accident (a chat about HTML) or on purpose. Besides showing
a stranger's formatting, nested tables make Qt's layout exponential: each level of `<table><tr><td>`
doubles the time, 10 take 0.1 s on the test machine, 16 (a file name of 241 characters) 8 s, and 20 had
not finished after 100 s, the GUI thread frozen all the while.

So every label that can show such text is a plain-text one, every tooltip and message box goes through
here, and our own rich text escapes what it quotes (`html.escape`).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGui
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A QLabel that shows `text` (and whatever it is given later) exactly as written."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


def plain_tip(text: str | None) -> str:
    """Tooltip text that Qt shows exactly as `text` reads (a tooltip has no plain-text switch)."""
    text = "" if text is None else str(text)
    if not QtGui.mightBeRichText(text):
        return text
    return QtGui.convertFromPlainText(text, Qt.WhiteSpaceMode.WhiteSpaceNormal)


def message_box(icon: QMessageBox.Icon, title: str, text: str, buttons: QMessageBox.StandardButton,
                parent: QWidget | None = None) -> QMessageBox:
    """A QMessageBox whose text is shown as written (Qt's static helpers guess the format)."""
    box = QMessageBox(icon, title, "", buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    return box
