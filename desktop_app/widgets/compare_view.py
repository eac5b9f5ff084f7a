"""A/B compare: one prompt, two mixes (or a mix against the base model), answers side by side,
with the same seed so the only difference is the adapters. Adapters that do not fit the loaded model
are left out (the pane's title says so); a failed side says why and offers Retry."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..stream_collector import StreamCollector
from .chat_input import thinking_choice
from .result_pane import ResultPane
from .sampling_panel import SamplingPanel


class CompareView(QWidget):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.collector = StreamCollector(state.host, self, state.describe_error)
        self._last_run: tuple[list, dict] | None = None        # (messages, params) of the latest run
        self.collector.all_finished.connect(self._update_enabled)

        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("One prompt, answered with both mixes")
        self.prompt.setAccessibleName("Compare prompt")
        self.prompt.setMaximumHeight(90)
        self.mix_a = QComboBox()
        self.mix_a.setAccessibleName("Mix A")
        self.mix_b = QComboBox()
        self.mix_b.setAccessibleName("Mix B")
        sampling = dict(state.settings.default_sampling())
        if sampling.get("seed", -1) < 0:
            sampling["seed"] = 42
        self.sampling = SamplingPanel(sampling, "Sampling (same for both)")
        self.run_button = QPushButton("Compare")
        self.run_button.setAccessibleName("Run compare")
        self.run_button.setToolTip("Answer the prompt with both mixes (Ctrl+Enter)")
        self.run_button.setShortcut("Ctrl+Return")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop compare")
        self.stop_button.clicked.connect(state.cancel_generation)

        row = QHBoxLayout()
        row.addWidget(QLabel("A:"))
        row.addWidget(self.mix_a, 1)
        row.addWidget(QLabel("B:"))
        row.addWidget(self.mix_b, 1)
        row.addWidget(self.run_button)
        row.addWidget(self.stop_button)

        self.pane_a = ResultPane("A", can_retry=True)
        self.pane_b = ResultPane("B", can_retry=True)
        self.pane_a.retry_requested.connect(lambda: self._retry("A"))
        self.pane_b.retry_requested.connect(lambda: self._retry("B"))
        panes = QSplitter(Qt.Orientation.Horizontal)
        panes.addWidget(self.pane_a)
        panes.addWidget(self.pane_b)
        panes.setChildrenCollapsible(False)
        panes.setStretchFactor(0, 1)
        panes.setStretchFactor(1, 1)
        self.panes = panes

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.prompt)
        lay.addLayout(row)
        lay.addWidget(self.sampling)
        lay.addWidget(panes, 1)

        state.presets_changed.connect(self._fill_choices)
        state.model_changed.connect(self._update_enabled)
        self._fill_choices()
        self._update_enabled()

    def _fill_choices(self) -> None:
        for combo, default in ((self.mix_a, "current"), (self.mix_b, "base")):
            key = combo.currentData() or default
            combo.clear()
            for label, k in self.state.mix_choices():
                combo.addItem(label, k)
            i = combo.findData(key)
            combo.setCurrentIndex(i if i >= 0 else 0)

    def _update_enabled(self, *_args) -> None:
        self.run_button.setEnabled(self.state.model is not None and not self.collector.running)
        self.stop_button.setEnabled(self.collector.running)

    def run(self) -> None:
        text = self.prompt.toPlainText().strip()
        if not text or self.state.model is None or self.collector.running:
            return
        params = self.sampling.params()
        params["thinking"] = thinking_choice(self.state)       # the chat's Think box (None: the template decides)
        messages = [("user", text)]
        self._last_run = (messages, params)
        for letter in ("A", "B"):
            self._run_side(letter, messages, params)
        self._update_enabled()

    def _run_side(self, letter: str, messages, params) -> None:
        pane, combo = (self.pane_a, self.mix_a) if letter == "A" else (self.pane_b, self.mix_b)
        key = combo.currentData()
        mix, summary = self.state.resolve_mix(key)
        left_out = self.state.left_out(key)
        if left_out:
            summary += f" — left out, they do not fit this model: {', '.join(left_out)}"
        pane.reset(f"{letter}: {summary}", formatted=self.state.settings.format_answers)
        rid = self.state.generate(messages, params, mix, tag=f"compare-{letter}")
        self.collector.track(rid, pane)

    def _retry(self, letter: str) -> None:
        if self._last_run is None or self.state.model is None:
            return
        self._run_side(letter, *self._last_run)
        self._update_enabled()
