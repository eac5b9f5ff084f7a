"""The adapter mixer beside the chat: the active adapters with switch, strength slider and number,
the library adapters that can be added (incompatible ones greyed with the reason), and presets.
An active adapter that does not fit the loaded model is held off, its card saying why.

A change here edits the mix model only; the next generation carries the new mix to the engine,
which swaps adapters without reloading the model.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..models.available_model import AvailableAdaptersModel
from ..plain_text import message_box, plain_label
from ..transient_dialogs import open_once
from .elided_label import ElidedLabel

SLIDER_STEPS = 100          # slider units per 1.0 of strength


class StrengthSlider(QSlider):
    """−2…2 in steps of 0.01; double-click resets to 1."""

    reset_requested = Signal()

    def __init__(self, strength_range: tuple[float, float]):
        super().__init__(Qt.Orientation.Horizontal)
        lo, hi = strength_range
        self.setRange(int(lo * SLIDER_STEPS), int(hi * SLIDER_STEPS))
        self.setSingleStep(5)
        self.setPageStep(25)
        self.setTickInterval(SLIDER_STEPS)
        self.setTickPosition(QSlider.TickPosition.TicksBelow)

    def mouseDoubleClickEvent(self, event):
        self.reset_requested.emit()
        event.accept()


class _NameLabel(ElidedLabel):
    """The card's name: clicking it works the switch, as a check box's own text would."""

    clicked = Signal()

    def mouseReleaseEvent(self, event):
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class MixRow(QFrame):
    """One active adapter."""

    def __init__(self, mixer: "AdapterMixer", row: int):
        super().__init__()
        self.mixer = mixer
        self.row = row
        entry = mixer.state.mix_model.entry(row)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # The switch is a bare box and the name a label that shortens itself: a long name never
        # pushes the strength box and ✕ out of the card.
        self.switch = QCheckBox()
        self.switch.setToolTip("Use this adapter")
        self.switch.setAccessibleName(f"Use adapter {entry.name}")
        self.name_label = _NameLabel(entry.name)
        self.name_label.clicked.connect(lambda: self.switch.isEnabled() and self.switch.click())
        self.layers_button = QToolButton()
        self.layers_button.setText("Layers…")
        self.layers_button.setToolTip("Strength per layer range")
        self.layers_button.setAccessibleName(f"Per-layer strength of {entry.name}")
        self.layers_button.setAutoRaise(True)
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove from the mix")
        self.remove_button.setAccessibleName(f"Remove adapter {entry.name}")
        self.remove_button.setAutoRaise(True)
        # (imported here: the mix gets its rows once the window is painted)
        from adapters_backend.engines.base import STRENGTH_RANGE
        self.slider = StrengthSlider(STRENGTH_RANGE)
        self.slider.setAccessibleName(f"Strength of {entry.name}")
        self.slider.setToolTip("Strength −2…2 (double-click: 1)")
        self.spin = QDoubleSpinBox()
        self.spin.setRange(*STRENGTH_RANGE)
        self.spin.setSingleStep(0.05)
        self.spin.setDecimals(2)
        self.spin.setAccessibleName(f"Strength value of {entry.name}")
        self.spin.setKeyboardTracking(False)
        self.slider.setMinimumWidth(40)
        self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.layers_note = plain_label()
        self.layers_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.layers_note.setWordWrap(True)
        self.unfit_note = plain_label()          # why it is held off: it does not fit the loaded model
        self.unfit_note.setWordWrap(True)
        self.unfit_note.setAccessibleName(f"Why {entry.name} is off")

        top = QHBoxLayout()
        top.addWidget(self.switch)
        top.addWidget(self.name_label, 1)
        top.addWidget(self.layers_button)
        top.addWidget(self.remove_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.spin)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addLayout(bottom)
        lay.addWidget(self.layers_note)
        lay.addWidget(self.unfit_note)
        self.refresh()

        self.switch.toggled.connect(self._on_switch_toggled)
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self.slider.reset_requested.connect(lambda: self._set_strength(1.0))
        self.spin.valueChanged.connect(self._on_spin_value_changed)
        self.remove_button.clicked.connect(lambda: self.mixer.remove_row(self.row))
        self.layers_button.clicked.connect(self._on_layers_button_clicked)

    def refresh(self) -> None:
        mix = self.mixer.state.mix_model
        e = mix.entry(self.row)
        unfit = mix.unfit_reason(e.adapter_id)
        for w in (self.switch, self.slider, self.spin):
            w.blockSignals(True)
        self.name_label.set_full_text(e.name)
        self.name_label.set_tooltip(e.name)
        self.switch.setChecked(mix.is_on(e))
        self.slider.setValue(round(e.strength * SLIDER_STEPS))
        self.spin.setValue(e.strength)
        for w in (self.switch, self.slider, self.spin):
            w.blockSignals(False)
        self.switch.setEnabled(unfit is None)
        self.name_label.setEnabled(unfit is None)
        self.slider.setEnabled(mix.is_on(e))
        self.spin.setEnabled(mix.is_on(e))
        self.unfit_note.setText(f"Off — does not fit this model: {unfit}" if unfit else "")
        self.unfit_note.setToolTip("It comes back on when a model it fits is loaded." if unfit else "")
        self.unfit_note.setVisible(unfit is not None)
        per_layer = bool(self.mixer.state.capability("per_layer"))
        self.layers_button.setVisible(per_layer)
        if e.layer_strengths:
            self.layers_note.setText("per layer: " + ", ".join(f"{a}–{b}×{f:g}" for a, b, f in e.layer_strengths))
        self.layers_note.setVisible(bool(e.layer_strengths))

    def _set_strength(self, value: float) -> None:
        self.mixer.state.mix_model.set_strength(self.row, value)

    def _on_switch_toggled(self, on: bool) -> None:
        self.mixer.state.mix_model.set_enabled(self.row, on)

    def _on_slider_value_changed(self, v: int) -> None:
        self._set_strength(v / SLIDER_STEPS)

    def _on_spin_value_changed(self, v: float) -> None:
        self._set_strength(v)

    def _on_layers_button_clicked(self) -> None:
        e = self.mixer.state.mix_model.entry(self.row)
        n_layers = self.mixer.state.model_layers()
        from .layer_strength_dialog import LayerStrengthDialog
        dlg = LayerStrengthDialog(e.name, e.layer_strengths, n_layers, self)
        if dlg.exec():
            self.mixer.state.mix_model.set_layer_strengths(self.row, dlg.ranges())


class AdapterMixer(QWidget):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Adapter mixer")
        self.rows: list[MixRow] = []

        title = QLabel("<b>Active adapters</b>")
        self.hint = QLabel("Changes apply to the next answer — no reload.")
        self.hint.setWordWrap(True)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.rows_box = QWidget()
        self.rows_layout = QVBoxLayout(self.rows_box)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(4)
        self.rows_layout.addStretch(1)
        self.empty_label = QLabel("No adapters in the mix.\nAdd one from the list below.")
        self.empty_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.rows_layout.insertWidget(0, self.empty_label)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.rows_box)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumHeight(150)

        # Presets.
        self.preset_combo = QComboBox()
        self.preset_combo.setAccessibleName("Mix presets")
        self.preset_combo.setToolTip("Saved mixes")
        self.preset_combo.setMinimumContentsLength(8)
        self.preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.load_preset_button = QPushButton("Apply")
        self.load_preset_button.setAccessibleName("Apply preset")
        self.save_preset_button = QPushButton("Save…")
        self.save_preset_button.setAccessibleName("Save mix as preset")
        self.delete_preset_button = QToolButton()
        self.delete_preset_button.setText("✕")
        self.delete_preset_button.setToolTip("Delete this preset")
        self.delete_preset_button.setAccessibleName("Delete preset")
        # The names get the whole width of the panel; the buttons go on the line below.
        presets = QVBoxLayout()
        presets.addWidget(self.preset_combo)
        preset_buttons = QHBoxLayout()
        preset_buttons.addWidget(self.load_preset_button)
        preset_buttons.addWidget(self.save_preset_button)
        preset_buttons.addStretch(1)
        preset_buttons.addWidget(self.delete_preset_button)
        presets.addLayout(preset_buttons)

        # Available adapters.
        self.available = AvailableAdaptersModel(state, self)
        self.available_view = QListView()
        self.available_view.setUniformItemSizes(True)
        self.available_view.setModel(self.available)
        self.available_view.setAccessibleName("Adapters in the library")
        self.available_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.available_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.available_view.doubleClicked.connect(self._on_available_view_double_clicked)
        self.add_button = QPushButton("Add to mix")
        self.add_button.setAccessibleName("Add adapter to mix")
        self.add_button.clicked.connect(self.add_selected)
        self.available_view.selectionModel().currentChanged.connect(self._update_add_button)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(title)
        lay.addWidget(self.hint)
        lay.addWidget(scroll, 3)
        lay.addWidget(QLabel("<b>Presets</b>"))
        lay.addLayout(presets)
        lay.addWidget(QLabel("<b>Library</b>"))
        lay.addWidget(self.available_view, 2)
        self.available_empty = QLabel("Every adapter in the library is in the mix. To get more, drop adapter "
                                      "files on the window or use the Hub tab.")
        self.available_empty.setWordWrap(True)
        self.available_empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        lay.addWidget(self.available_empty)
        lay.addWidget(self.add_button)
        for sig in (self.available.rowsInserted, self.available.rowsRemoved, self.available.modelReset,
                    self.available.layoutChanged):
            sig.connect(self._update_available_empty)
        self._update_available_empty()

        mix = state.mix_model
        mix.rowsInserted.connect(self._rebuild)
        mix.rowsRemoved.connect(self._rebuild)
        mix.modelReset.connect(self._rebuild)
        mix.dataChanged.connect(self._on_mix_data_changed)
        mix.mix_edited.connect(state.mix_changed_by_user)
        state.model_changed.connect(self._on_state_model_changed)
        state.presets_changed.connect(self._refresh_presets)
        self.load_preset_button.clicked.connect(self._on_load_preset_clicked)
        self.save_preset_button.clicked.connect(self._on_save_preset_clicked)
        self.delete_preset_button.clicked.connect(self._on_delete_preset_clicked)
        state.library_changed.connect(self._refresh_presets)
        self.load_preset_button.setEnabled(False)
        self.delete_preset_button.setEnabled(False)
        self._rebuild()
        self._update_add_button()

    # -- rows --
    def _rebuild(self, *_args) -> None:
        for r in self.rows:
            self.rows_layout.removeWidget(r)
            r.deleteLater()
        self.rows = []
        for i in range(self.state.mix_model.rowCount()):
            row = MixRow(self, i)
            self.rows_layout.insertWidget(self.rows_layout.count() - 1, row)
            self.rows.append(row)
        self.empty_label.setVisible(not self.rows)
        self._update_add_button()

    def _on_mix_data_changed(self, top_left, bottom_right, _roles=()) -> None:
        for r in range(top_left.row(), bottom_right.row() + 1):
            if 0 <= r < len(self.rows):
                self.rows[r].refresh()

    def _on_state_model_changed(self) -> None:
        for r in self.rows:
            r.refresh()
        self._update_add_button()

    def remove_row(self, row: int) -> None:
        self.state.mix_model.remove(row)

    def row_for(self, adapter_id: str) -> MixRow | None:
        i = self.state.mix_model.row_of(adapter_id)
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def _update_available_empty(self, *_args) -> None:
        empty = self.available.rowCount() == 0 and self.state.library_model.rowCount() > 0
        self.available_empty.setVisible(empty)
        self.available_view.setVisible(not empty)
        self.add_button.setVisible(not empty)

    # -- adding --
    def _update_add_button(self, *_args) -> None:
        idx = self.available_view.currentIndex()
        self.add_button.setEnabled(idx.isValid() and bool(self.available.flags(idx) & Qt.ItemFlag.ItemIsEnabled))

    def add_selected(self) -> None:
        idx = self.available_view.currentIndex()
        if idx.isValid():
            self._add_proxy_row(idx.row())

    def _on_available_view_double_clicked(self, idx) -> None:
        self._add_proxy_row(idx.row())

    def _add_proxy_row(self, proxy_row: int) -> None:
        entry = self.available.entry(proxy_row)
        if entry is None:
            return
        if not self.state.add_to_mix(entry.id):
            self.misfit_box = warn_cannot_add(self, self.state, entry.id)

    def add_adapter(self, adapter_id: str) -> bool:
        return self.state.add_to_mix(adapter_id)

    # -- presets --
    def _refresh_presets(self) -> None:
        current = self.preset_combo.currentText()
        self.preset_combo.clear()
        names = self.state.presets.names()
        self.preset_combo.addItems(names)
        # (with a placeholder text set, Qt leaves a refilled combo on no item: pick one)
        self.preset_combo.setCurrentIndex(names.index(current) if current in names else 0 if names else -1)
        has = bool(names)
        self.load_preset_button.setEnabled(has)
        self.delete_preset_button.setEnabled(has)
        if not has:
            self.preset_combo.setPlaceholderText("No presets yet")

    def _on_save_preset_clicked(self) -> None:
        from PySide6.QtWidgets import QInputDialog  # only when shown
        name, ok = QInputDialog.getText(self, "Save mix", "Preset name:", text=self.preset_combo.currentText())
        if ok and name.strip() and self.state.save_preset(name.strip()):
            self.preset_combo.setCurrentText(name.strip())

    def _on_load_preset_clicked(self) -> None:
        from PySide6.QtWidgets import QMessageBox  # only when shown
        name = self.preset_combo.currentText()
        if not name:
            return
        missing = self.state.apply_preset(name)
        if missing:
            self.preset_box = open_once(message_box(
                QMessageBox.Icon.Information, "Preset applied",
                "These adapters are no longer in the library and were left out: " + ", ".join(missing),
                QMessageBox.StandardButton.Ok, self))

    def _on_delete_preset_clicked(self) -> None:
        from PySide6.QtWidgets import QMessageBox  # only when shown
        name = self.preset_combo.currentText()
        if not name:
            return
        box = message_box(QMessageBox.Icon.Question, "Delete preset", f"Delete the preset “{name}”?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setAccessibleName("Confirm preset deletion")
        box.accepted.connect(lambda: self.state.delete_preset(name))
        self.confirm_box = open_once(box)


def warn_cannot_add(parent, state, adapter_id: str):
    """A warning (non-blocking) that an adapter cannot join the mix, with the check's reason; returns the box."""
    from PySide6.QtWidgets import QMessageBox  # only when shown
    entry = state.library_model.entry_by_id(adapter_id)
    verdict = state.compat.get(adapter_id)
    name = entry.name if entry else "This adapter"
    if state.model is None:
        text = f"Load a model first: {name} can be added once LoRA Deck knows it fits."
    else:
        text = f"{name} does not fit {state.model_label()}: " + (
            (verdict.reason if verdict and verdict.reason else "it cannot be used with this model")
            .removeprefix("incompatible: "))
    box = message_box(QMessageBox.Icon.Warning, "Cannot add adapter", text, QMessageBox.StandardButton.Ok, parent)
    box.setAccessibleName("Cannot add adapter")
    return open_once(box)
