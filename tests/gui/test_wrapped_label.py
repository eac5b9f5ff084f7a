"""WrappedLabel answers heightForWidth from memory for a width it has seen, and gives exactly the
heights a QLabel gives, before and after its text or font changes."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from desktop_app.widgets.wrapped_label import REMEMBERED_WIDTHS, WrappedLabel


def reference(text: str) -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setText(text)
    return label


def test_heights_are_qlabels_and_each_width_is_laid_out_once(qtbot):
    text = "The harbour keeper wrote down every ship that came in. " * 40
    label, ref = WrappedLabel(text), reference(text)
    qtbot.addWidget(label)
    qtbot.addWidget(ref)
    widths = (80, 200, 640, 200, 80, 640)
    assert [label.heightForWidth(w) for w in widths] == [ref.heightForWidth(w) for w in widths]
    assert sorted(label._heights) == [80, 200, 640]              # three layouts for six questions

    label.setText(text * 2)                                      # new text: measured again
    ref.setText(text * 2)
    assert [label.heightForWidth(w) for w in widths] == [ref.heightForWidth(w) for w in widths]
    font = label.font()
    font.setPointSize(font.pointSize() * 2)                      # a bigger font: measured again
    label.setFont(font)
    ref.setFont(font)
    assert [label.heightForWidth(w) for w in widths] == [ref.heightForWidth(w) for w in widths]
    assert label.textFormat() == Qt.TextFormat.PlainText and label.wordWrap()
    label.clear()
    ref.clear()
    assert label.heightForWidth(200) == ref.heightForWidth(200)


def test_a_resize_through_many_widths_keeps_only_the_recent_ones(qtbot):
    label = WrappedLabel("word " * 200)
    qtbot.addWidget(label)
    for w in range(100, 100 + 10 * REMEMBERED_WIDTHS * 3, 10):
        label.heightForWidth(w)
    assert 0 < len(label._heights) <= REMEMBERED_WIDTHS


def test_markup_stays_text(qtbot):
    label = WrappedLabel("<b>not bold</b>")
    qtbot.addWidget(label)
    assert label.text() == "<b>not bold</b>" and label.textFormat() == Qt.TextFormat.PlainText
