"""Downloads and installs in progress or finished: a progress bar each, cancel, resume, clear."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QVBoxLayout,
    QWidget,
)

from ..activity import ActivityListModel


class ActivityDelegate(QStyledItemDelegate):
    """Title and status text above a progress bar, all drawn by the current style (theme-aware)."""

    def sizeHint(self, option, index) -> QSize:
        h = option.fontMetrics.height()
        return QSize(300, 2 * h + 18)

    def paint(self, painter, option, index) -> None:
        a = index.data(ActivityListModel.ActivityRole)
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        r = option.rect.adjusted(6, 3, -6, -3)
        h = option.fontMetrics.height()
        selected = option.state & QStyle.StateFlag.State_Selected
        role = option.palette.ColorRole.HighlightedText if selected else option.palette.ColorRole.Text
        painter.save()
        painter.setPen(option.palette.color(role))
        text = f"{a.title} — {a.status_text()}"
        painter.drawText(QRect(r.left(), r.top(), r.width(), h), Qt.AlignmentFlag.AlignLeft,
                         option.fontMetrics.elidedText(text, Qt.TextElideMode.ElideMiddle, r.width()))
        painter.restore()
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(r.left(), r.top() + h + 4, r.width(), max(8, h - 2))
        bar.minimum, bar.maximum = 0, 1000
        frac = a.fraction
        if a.state == "done":
            bar.progress = 1000
        elif frac is None:
            bar.progress = 0
            if a.state == "running":
                bar.minimum = bar.maximum = 0       # busy indicator
        else:
            bar.progress = int(1000 * min(max(frac, 0.0), 1.0))
        bar.state = QStyle.StateFlag.State_Enabled if a.state in ("running", "done") else QStyle.StateFlag.State_None
        # Qt 6 reads a progress bar's orientation from this flag; without it the chunk is drawn as a
        # vertical bar inside the thin horizontal groove, i.e. invisible.
        bar.state |= QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        bar.textVisible = False
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class DownloadsPanel(QWidget):
    def __init__(self, activities: ActivityListModel, parent=None):
        super().__init__(parent)
        self.activities = activities
        self.view = QListView()
        self.view.setModel(activities)
        self.view.setItemDelegate(ActivityDelegate(self.view))
        self.view.setAccessibleName("Downloads and installs")
        self.view.setUniformItemSizes(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel download")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setAccessibleName("Resume download")
        self.resume_button.setToolTip("Start again; finished parts of files are kept and not downloaded twice")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setAccessibleName("Clear finished downloads")
        buttons = QVBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.view, 1)
        lay.addLayout(buttons)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.resume_button.clicked.connect(self.resume_selected)
        self.clear_button.clicked.connect(activities.clear_finished)
        self.view.selectionModel().currentChanged.connect(self._update_buttons)
        activities.dataChanged.connect(self._update_buttons)
        activities.rowsInserted.connect(self._on_rows_inserted)
        # The panel is built by the first download's rowsInserted, too late to hear that one: select it
        # now, or Cancel would stay disabled until the user clicked the row.
        if activities.rowCount():
            self.view.setCurrentIndex(activities.index(0))
        self._update_buttons()

    def _selected(self):
        idx = self.view.currentIndex()
        return idx.data(ActivityListModel.ActivityRole) if idx.isValid() else None

    def _on_rows_inserted(self, *_args) -> None:
        self.view.setCurrentIndex(self.activities.index(0))
        self._update_buttons()

    def _update_buttons(self, *_args) -> None:
        a = self._selected()
        self.cancel_button.setEnabled(bool(a) and a.state == "running" and a.handle is not None)
        self.resume_button.setEnabled(bool(a) and a.state in ("failed", "cancelled") and a.retry is not None)

    def cancel_selected(self) -> None:
        a = self._selected()
        if a is not None and a.handle is not None and a.state == "running":
            a.handle.cancel()
            self.activities.update(a, message="Cancelling…")

    def resume_selected(self) -> None:
        a = self._selected()
        if a is not None and a.retry is not None and a.state in ("failed", "cancelled"):
            a.retry()
