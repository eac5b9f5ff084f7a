"""Layouts that hold at 1024×700 and at the default size: nothing a user needs is cut off or squeezed.

Each check looks at the widgets' real geometry after layout (what a screenshot would show): a control
lies inside every parent up to the window and is at least as wide as its text needs; long texts are
shortened with "…" where the design says so, and wrap where it says they wrap. A screenshot of each
state is grabbed too and must not be blank."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontInfo
from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

from desktop_app.widgets.main_window import DEFAULT_SIZE

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000
SIZES = [(1024, 700), DEFAULT_SIZE]
LONG_NAME = "lora0-d2048-l12-f5632-h16-r16-f32"


def shown_whole(widget, window) -> bool:
    """Visible, and its whole rectangle lies inside every parent up to the window (nothing clipped)."""
    if not widget.isVisibleTo(window) or widget.width() <= 0 or widget.height() <= 0:
        return False
    rect, w = widget.rect(), widget
    while w is not window:
        parent = w.parentWidget()
        rect = rect.translated(w.pos())
        if not parent.rect().contains(rect):
            return False
        w = parent
    return True


def roomy(button) -> bool:
    """At least as wide as its label needs (a squeezed push button clips its text)."""
    return button.width() >= button.sizeHint().width()


def not_blank(widget) -> bool:
    img = widget.grab().toImage()
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    return len(colours) > 10


def long_named_adapter(demo, dest):
    """A valid PEFT adapter for the demo model (new random factors) in a folder with a long name."""
    from safetensors.numpy import load_file, save_file

    src = next(a.path for a in demo.demo_adapters() if a.format == "peft")
    folder = dest / LONG_NAME
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    save_file({k: (rng.standard_normal(v.shape) * 0.02).astype(np.float32)
               for k, v in load_file(str(src / "adapter_model.safetensors")).items()},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text((src / "adapter_config.json").read_text())
    return folder


@pytest.fixture
def sized_app(make_app, demo_engine, qtbot, tmp_path, request):
    """The demo app at a given size with the long-named adapter installed and switched on."""
    demo, _ = demo_engine

    def make(size):
        app = make_app()
        app.window.resize(*size)
        app.start()
        state, w = app.state, app.window
        qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
        with qtbot.waitSignal(w.drops.installed, timeout=TIMEOUT) as installed:
            w.drops.install(long_named_adapter(demo, tmp_path / f"src-{size[0]}"))
        entry = installed.args[1]
        assert state.add_to_mix(entry.id)
        qtbot.waitUntil(lambda: len(w.mixer.rows) == 4, timeout=TIMEOUT)
        qtbot.waitUntil(lambda: w.size().width() == size[0], timeout=TIMEOUT)
        return app, entry

    return make


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat_rewraps_and_mixer_cards_keep_their_controls(sized_app, qtbot, size):
    app, entry = sized_app(size)
    w = app.window
    chat = w.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(30)
    question = "Tell me a joke about adapters and strength sliders, please. " * 4
    chat.prompt.setPlainText(question)
    chat.send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    qtbot.wait(50)
    # No downloads panel popped up for the install (it would squeeze the chat).
    assert w._downloads_dock is None or not w._downloads_dock.isVisible()

    # The transcript fits the visible width: nothing scrolls sideways, the long question wraps, and
    # every action of the last messages is on screen.
    scroll = chat.scroll
    assert not scroll.horizontalScrollBar().isVisible()
    assert chat.transcript.width() <= scroll.viewport().width()
    you, answer = chat._message_widgets()[-2:]
    assert you.body.height() > 1.5 * you.body.fontMetrics().height()          # wrapped onto several lines
    for widget, buttons in ((you, (you.edit_button, you.copy_button)),
                            (answer, (answer.regen_button, answer.copy_button))):
        assert shown_whole(widget.body, w)
        for b in buttons:
            assert shown_whole(b, w), (b.text(), b.geometry(), widget.width())
    assert LONG_NAME in answer.info.full_text() and answer.info.is_elided() == (
        answer.info.fontMetrics().horizontalAdvance(answer.info.full_text()) > answer.info.width())

    # Each mixer card: the name shortened to fit (whole in its tooltip), every control inside the card.
    dock = w.mixer_dock
    for width in (dock.width(), dock.minimumSizeHint().width()):
        w.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
        qtbot.wait(30)
        for row in w.mixer.rows:
            for control in (row.switch, row.name_label, row.spin, row.remove_button):
                assert shown_whole(control, w), (row.name_label.full_text(), control, dock.width())
        card = w.mixer.row_for(entry.id)
        assert card.name_label.is_elided() and card.name_label.toolTip() == LONG_NAME
        assert card.name_label.text().endswith("…")
    assert not_blank(w)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_library_buttons_details_and_report(sized_app, qtbot, size):
    app, entry = sized_app(size)
    w = app.window
    library = w.show_view("library")
    assert library.select_adapter(entry.id)
    qtbot.waitUntil(lambda: library.anatomy.anatomy is not None, timeout=TIMEOUT)
    qtbot.wait(30)
    # Whole, however wide the user makes the adapters panel (here as it opens, and widened).
    for dock_width in (w.mixer_dock.width(), 360):
        w.resizeDocks([w.mixer_dock], [dock_width], Qt.Orientation.Horizontal)
        qtbot.wait(30)
        for b in (library.install_button, library.add_button, library.rename_button, library.reveal_button,
                  library.remove_button, library.save_notes_button):
            assert shown_whole(b, w) and roomy(b), (b.text(), b.width(), b.sizeHint().width(), dock_width)
    # Inspect report: a fixed-pitch font, so its columns line up.
    assert QFontInfo(library.report.font()).fixedPitch()
    assert not_blank(w)

    # With the downloads panel open the details scroll, their rows never overlap, and the heat map
    # keeps room for a few layers.
    w.downloads_dock.show()
    qtbot.wait(50)
    form = library.summary
    fields = [form.itemAt(r, form.ItemRole.FieldRole).widget() for r in range(form.rowCount())]
    labels = [form.itemAt(r, form.ItemRole.LabelRole).widget() for r in range(form.rowCount())]
    assert len(fields) >= 8
    for upper, lower in zip(fields, fields[1:]):
        assert upper.geometry().bottom() < lower.geometry().top(), (upper.text(), lower.text())
        assert upper.height() >= upper.heightForWidth(upper.width())          # a wrapped value is whole
    for label in labels:
        assert label.width() >= label.sizeHint().width()
    assert library.detail_tabs.height() >= library.detail_tabs.minimumHeight() >= 150
    assert shown_whole(library.reveal_button, w) and roomy(library.reveal_button)
    assert not_blank(w)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_presets_and_compare_errors_fit(sized_app, qtbot, size):
    app, _entry = sized_app(size)
    state, w = app.state, app.window
    state.save_preset("Pirate shout")
    combo = w.mixer.preset_combo
    assert combo.currentText() == "Pirate shout"
    opt = QStyleOptionComboBox()
    combo.initStyleOption(opt)
    field: QRect = combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                                QStyle.SubControl.SC_ComboBoxEditField, combo)
    assert field.width() >= combo.fontMetrics().horizontalAdvance("Pirate shout")
    for b in (w.mixer.load_preset_button, w.mixer.save_preset_button, w.mixer.delete_preset_button):
        assert shown_whole(b, w)

    compare = w.show_view("compare")
    qtbot.wait(30)
    error = ("shout does not fit tiny-llama.gguf: incompatible: hidden size: the adapter was made for hidden "
             "size 128, the base has 64; shape mismatch in 28 module(s): q_proj, k_proj, v_proj …") * 2
    compare.pane_b.set_failed(error)
    qtbot.wait(30)
    total = compare.panes.width()
    assert compare.pane_a.width() > 0.4 * total and compare.pane_b.width() > 0.4 * total
    assert error in compare.pane_b.text.toPlainText()          # whole, where it wraps
    assert not_blank(w)


def test_anatomy_legend_is_not_cut(qtbot):
    """A one-module adapter's heat map is narrower than the legend's caption: the view is as wide as both."""
    from PySide6.QtGui import QFontMetrics

    from adapters_backend.report.anatomy import Anatomy
    from desktop_app.widgets.anatomy_view import LEGEND_CAPTION, AnatomyView

    view = AnatomyView()
    qtbot.addWidget(view)
    anatomy = Anatomy(layers=[0, 1], modules=["q_proj"], norms=[[0.5], [1.0]],
                      full_names=[["layers.0.q_proj"], ["layers.1.q_proj"]], ranks=[[4], [4]],
                      scales=[[2.0], [2.0]], max_norm=1.0)
    view.set_anatomy(anatomy)
    fm = QFontMetrics(view.font())
    assert view.sizeHint().width() >= view._label_width() + fm.horizontalAdvance(LEGEND_CAPTION)
    view.resize(view.sizeHint())
    assert not_blank(view)
