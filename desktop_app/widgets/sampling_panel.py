"""Sampling settings (max tokens, temperature, top-p, top-k, repeat penalty, seed) in a collapsible box."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QSpinBox, QToolButton, QVBoxLayout, QWidget


class SamplingPanel(QWidget):
    changed = Signal()

    def __init__(self, defaults: dict, title: str = "Sampling", collapsed: bool = True, parent=None):
        super().__init__(parent)
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setChecked(not collapsed)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if not collapsed else Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setAccessibleName("Show sampling settings")
        self.toggle.toggled.connect(self._on_toggle_toggled)

        self.body = QWidget()
        form = QFormLayout(self.body)
        form.setContentsMargins(18, 0, 0, 0)
        self.max_tokens = self._int(1, 32768, "Maximum tokens in a reply")
        self.temperature = self._float(0.0, 5.0, 0.05, 2, "Temperature (0 = always the most likely token)")
        self.top_p = self._float(0.0, 1.0, 0.01, 2, "Top-p (nucleus) sampling")
        self.top_k = self._int(0, 1000, "Top-k sampling (0 = off)")
        self.repeat_penalty = self._float(0.5, 3.0, 0.05, 2, "Repeat penalty")
        self.seed = self._int(-1, 2_147_483_647, "Seed (random: a new one for each answer; set one to repeat an "
                                                 "answer exactly)")
        self.seed.setSpecialValueText("random")
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        form.addRow("Repeat penalty", self.repeat_penalty)
        form.addRow("Seed", self.seed)
        self.body.setVisible(not collapsed)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.body)
        self.set_params(defaults)

    def _int(self, lo, hi, name) -> QSpinBox:
        w = QSpinBox()
        w.setRange(lo, hi)
        w.setAccessibleName(name)
        w.setToolTip(name)
        w.valueChanged.connect(self.changed)
        return w

    def _float(self, lo, hi, step, decimals, name) -> QDoubleSpinBox:
        w = QDoubleSpinBox()
        w.setRange(lo, hi)
        w.setSingleStep(step)
        w.setDecimals(decimals)
        w.setAccessibleName(name)
        w.setToolTip(name)
        w.valueChanged.connect(self.changed)
        return w

    def _on_toggle_toggled(self, on: bool) -> None:
        self.body.setVisible(on)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def params(self) -> dict:
        return {"max_tokens": self.max_tokens.value(), "temperature": round(self.temperature.value(), 4),
                "top_p": round(self.top_p.value(), 4), "top_k": self.top_k.value(),
                "repeat_penalty": round(self.repeat_penalty.value(), 4), "seed": self.seed.value()}

    def set_params(self, p: dict) -> None:
        for name in ("max_tokens", "temperature", "top_p", "top_k", "repeat_penalty", "seed"):
            if name in p and p[name] is not None:
                getattr(self, name).setValue(p[name])
