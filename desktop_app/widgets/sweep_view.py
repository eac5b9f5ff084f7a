"""Strength sweep: one prompt answered at several strengths of one adapter (or a grid over two),
side by side with the same seed — the X/Y plot image-LoRA users know, for text."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from adapters_backend.engines.base import STRENGTH_RANGE, ActiveAdapter

from ..plain_text import plain_label
from ..stream_collector import StreamCollector
from .chat_input import thinking_choice
from .result_pane import ResultPane
from .sampling_panel import SamplingPanel

DEFAULT_STRENGTHS = "0, 0.25, 0.5, 0.75, 1"
MAX_CELLS = 36


def parse_strengths(text: str) -> list[float]:
    """"0, 0.5, 1" → [0.0, 0.5, 1.0]; raises ValueError with a readable message."""
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"'{part}' is not a number") from None
        lo, hi = STRENGTH_RANGE
        if not lo <= v <= hi:
            raise ValueError(f"{v:g} is outside {lo:g}…{hi:g}")
        out.append(v)
    if not out:
        raise ValueError("give at least one strength")
    return out


class SweepView(QWidget):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.collector = StreamCollector(state.host, self, state.describe_error)
        self.collector.all_finished.connect(self._update_enabled)
        self.panes: list[ResultPane] = []

        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("One prompt, answered at each strength")
        self.prompt.setAccessibleName("Sweep prompt")
        self.prompt.setMaximumHeight(80)
        self.adapter_x = QComboBox()
        self.adapter_x.setAccessibleName("Adapter to sweep")
        self.strengths_x = QLineEdit(DEFAULT_STRENGTHS)
        self.strengths_x.setAccessibleName("Strengths of the first adapter")
        self.use_y = QCheckBox("and")
        self.use_y.setAccessibleName("Sweep a second adapter")
        self.adapter_y = QComboBox()
        self.adapter_y.setAccessibleName("Second adapter")
        self.strengths_y = QLineEdit("0, 1")
        self.strengths_y.setAccessibleName("Strengths of the second adapter")
        self.keep_rest = QCheckBox("keep the rest of the mix")
        self.keep_rest.setToolTip("Also apply the other active adapters at their current strengths")
        self.keep_rest.setAccessibleName("Keep the rest of the mix")
        self.use_y.toggled.connect(self._update_enabled)
        sampling = dict(state.settings.default_sampling())
        if sampling.get("seed", -1) < 0:
            sampling["seed"] = 42
        sampling["max_tokens"] = min(sampling.get("max_tokens", 128), 128)
        self.sampling = SamplingPanel(sampling, "Sampling (same for every cell)")
        self.run_button = QPushButton("Run sweep")
        self.run_button.setAccessibleName("Run sweep")
        self.run_button.setShortcut("Ctrl+Return")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop sweep")
        self.stop_button.clicked.connect(state.cancel_generation)
        self.error = plain_label()
        self.error.setWordWrap(True)

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Adapter:"))
        row1.addWidget(self.adapter_x, 1)
        row1.addWidget(QLabel("strengths:"))
        row1.addWidget(self.strengths_x, 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.use_y)
        row2.addWidget(self.adapter_y, 1)
        row2.addWidget(QLabel("strengths:"))
        row2.addWidget(self.strengths_y, 1)
        row3 = QHBoxLayout()
        row3.addWidget(self.keep_rest)
        row3.addStretch(1)
        row3.addWidget(self.run_button)
        row3.addWidget(self.stop_button)

        self.grid_box = QWidget()
        self.grid = QGridLayout(self.grid_box)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.placeholder = QLabel("Pick an adapter and strengths, type a prompt, and press Run sweep.\n"
                                  "Every answer uses the same seed, so only the strength differs.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.grid.addWidget(self.placeholder, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_box)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.prompt)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addLayout(row3)
        lay.addWidget(self.sampling)
        lay.addWidget(self.error)
        lay.addWidget(scroll, 1)

        for sig in (state.library_model.modelReset, state.library_model.rowsInserted,
                    state.library_model.rowsRemoved, state.compat_changed, state.model_changed):
            sig.connect(self._fill_adapters)
        state.model_changed.connect(self._update_enabled)
        self._fill_adapters()
        self._update_enabled()

    def _fill_adapters(self, *_args) -> None:
        compat = self.state.compat
        usable = [e for e in self.state.library_model.entries() if e.id not in compat or compat[e.id].usable]
        for combo in (self.adapter_x, self.adapter_y):
            key = combo.currentData()
            combo.clear()
            for e in usable:
                combo.addItem(e.name, e.id)
            i = combo.findData(key)
            if i >= 0:
                combo.setCurrentIndex(i)
        if self.adapter_y.count() > 1 and self.adapter_y.currentData() == self.adapter_x.currentData():
            self.adapter_y.setCurrentIndex(1)
        self._update_enabled()

    def _update_enabled(self, *_args) -> None:
        ready = self.state.model is not None and self.adapter_x.count() > 0
        self.run_button.setEnabled(ready and not self.collector.running)
        self.stop_button.setEnabled(self.collector.running)
        self.adapter_y.setEnabled(self.use_y.isChecked())
        self.strengths_y.setEnabled(self.use_y.isChecked())

    def _clear_grid(self) -> None:
        for i in reversed(range(self.grid.count())):
            w = self.grid.itemAt(i).widget()
            if w is not None and w is not self.placeholder:
                self.grid.removeWidget(w)
                w.deleteLater()
        self.panes = []
        self.placeholder.hide()

    def run(self) -> None:
        text = self.prompt.toPlainText().strip()
        if not text or self.state.model is None or self.collector.running or self.adapter_x.count() == 0:
            return
        try:
            xs = parse_strengths(self.strengths_x.text())
            ys = parse_strengths(self.strengths_y.text()) if self.use_y.isChecked() else [None]
        except ValueError as exc:
            self.error.setText(f"Strengths: {exc}")
            return
        if len(xs) * len(ys) > MAX_CELLS:
            self.error.setText(f"At most {MAX_CELLS} answers per sweep; use fewer strengths.")
            return
        x_entry = self.state.library_model.entry_by_id(self.adapter_x.currentData())
        y_entry = self.state.library_model.entry_by_id(self.adapter_y.currentData()) if ys != [None] else None
        if y_entry is not None and y_entry.id == x_entry.id:
            self.error.setText(f"Pick two different adapters: {x_entry.name} on both axes would only add up its "
                               "own strengths.")
            return
        self.error.clear()
        swept = {x_entry.id} | ({y_entry.id} if y_entry else set())
        rest = []
        if self.keep_rest.isChecked():
            rest = [e.active() for e in self.state.mix_model.entries() if e.enabled and e.adapter_id not in swept]
        params = self.sampling.params()
        params["thinking"] = thinking_choice(self.state)       # the chat's Think box (None: the template decides)
        messages = [("user", text)]
        self._clear_grid()
        if y_entry is not None:
            for c, x in enumerate(xs):
                self.grid.addWidget(QLabel(f"<b>{html.escape(x_entry.name)} {x:g}</b>"), 0, c + 1)
            for r, y in enumerate(ys):
                self.grid.addWidget(QLabel(f"<b>{html.escape(y_entry.name)} {y:g}</b>"), r + 1, 0)
        for r, y in enumerate(ys):
            for c, x in enumerate(xs):
                mix = rest + [ActiveAdapter(str(x_entry.path), x, name=x_entry.name)]
                title = f"{x_entry.name} {x:g}"
                if y_entry is not None:
                    mix.append(ActiveAdapter(str(y_entry.path), y, name=y_entry.name))
                    title += f", {y_entry.name} {y:g}"
                pane = ResultPane(title, formatted=self.state.settings.format_answers)
                pane.setMinimumWidth(220)
                cols = len(xs) if y_entry is not None else min(len(xs), 3)
                if y_entry is not None:
                    self.grid.addWidget(pane, r + 1, c + 1)
                else:
                    self.grid.addWidget(pane, c // cols, c % cols)
                self.panes.append(pane)
                rid = self.state.generate(messages, params, mix, tag=("sweep", x, y))
                self.collector.track(rid, pane)
        self._update_enabled()
