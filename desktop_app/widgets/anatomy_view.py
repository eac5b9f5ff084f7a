"""Adapter anatomy: a layer × module heat map of each module's update norm ‖ΔW‖_F (computed by the
backend from the low-rank factors), with rank and scale per module in the tooltip."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QLinearGradient, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from ..plain_text import plain_tip

# Viridis control points: perceptually even and readable for colour-blind users, on light or dark.
_VIRIDIS = [(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)), (0.75, (94, 201, 98)),
            (1.0, (253, 231, 37))]

CELL_W, CELL_H = 54, 18
LEGEND_CAPTION = "‖ΔW‖ per module at strength 1"
LEGEND_H = 58                # bar, its end labels and the caption under the grid


def heat_colour(t: float) -> QColor:
    t = min(max(t, 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(_VIRIDIS, _VIRIDIS[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            return QColor(*(round(a + (b - a) * f) for a, b in zip(c0, c1)))
    return QColor(*_VIRIDIS[-1][1])


class AnatomyView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.anatomy = None
        self.message = "Select an adapter to see where it acts."
        self.setMouseTracking(True)
        self.setAccessibleName("Adapter anatomy heat map")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    def set_anatomy(self, anatomy) -> None:
        self.anatomy = anatomy
        self.message = "" if anatomy and anatomy.layers else "This adapter has no low-rank modules to show."
        if anatomy is not None:
            self.setAccessibleDescription(self.describe())
        self.updateGeometry()
        self.update()

    def set_message(self, text: str) -> None:
        self.anatomy = None
        self.message = text
        self.updateGeometry()
        self.update()

    def describe(self) -> str:
        """A text summary for screen readers: the strongest modules."""
        a = self.anatomy
        cells = [(a.norms[i][j], a.full_names[i][j]) for i in range(len(a.layers)) for j in range(len(a.modules))
                 if a.norms[i][j] is not None]
        cells.sort(key=lambda c: -c[0])
        top = ", ".join(f"{name} ({v:.3g})" for v, name in cells[:3])
        return f"{len(cells)} adapted modules in {len(a.layers)} layers; strongest: {top}"

    # -- geometry --
    def _label_width(self) -> int:
        fm = QFontMetrics(self.font())
        return fm.horizontalAdvance("layer 000") + 8

    def _header_height(self) -> int:
        return QFontMetrics(self.font()).height() + 8

    @staticmethod
    def column_label(module: str) -> str:
        """"down_proj" → "down": the shared suffix only widens every column (full name in the tooltip)."""
        return module[:-5] if module.endswith("_proj") and len(module) > 5 else module

    def _cell_w(self) -> int:
        if self.anatomy is None or not self.anatomy.modules:
            return CELL_W
        fm = QFontMetrics(self.font())
        widest = max(fm.horizontalAdvance(self.column_label(m)) for m in self.anatomy.modules) + 8
        return max(CELL_W, widest)

    def sizeHint(self) -> QSize:
        if self.anatomy is None or not self.anatomy.layers:
            return QSize(300, 60)
        lw = self._label_width()
        # As wide as the grid, the legend bar and the legend's caption, whichever is widest.
        fm = QFontMetrics(self.font())
        w = lw + max(self._cell_w() * len(self.anatomy.modules), self._legend_width(),
                     fm.horizontalAdvance(LEGEND_CAPTION)) + 10
        h = self._header_height() + CELL_H * len(self.anatomy.layers) + LEGEND_H
        return QSize(w, h)

    def _legend_width(self) -> int:
        return min(240, max(120, self._cell_w() * len(self.anatomy.modules)))

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def _cell_at(self, pos: QPoint):
        a = self.anatomy
        if a is None:
            return None
        x = pos.x() - self._label_width()
        y = pos.y() - self._header_height()
        if x < 0 or y < 0:
            return None
        j, i = x // self._cell_w(), y // CELL_H
        if i < len(a.layers) and j < len(a.modules):
            return int(i), int(j)
        return None

    # -- painting --
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        text = pal.color(QPalette.ColorRole.Text)
        a = self.anatomy
        if a is None or not a.layers:
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        lw, hh, cw = self._label_width(), self._header_height(), self._cell_w()
        p.setPen(text)
        for j, name in enumerate(a.modules):
            p.drawText(QRect(lw + j * cw, 0, cw, hh), Qt.AlignmentFlag.AlignCenter, self.column_label(name))
        top = max(a.max_norm, 1e-12)
        for i, layer in enumerate(a.layers):
            y = hh + i * CELL_H
            p.setPen(text)
            p.drawText(QRect(0, y, lw - 6, CELL_H), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       "other" if layer is None else f"layer {layer}")
            for j in range(len(a.modules)):
                v = a.norms[i][j]
                r = QRect(lw + j * cw + 1, y + 1, cw - 2, CELL_H - 2)
                if v is None:
                    if a.full_names[i][j] is not None:      # adapted, but not a low-rank update
                        p.fillRect(r, pal.color(QPalette.ColorRole.Mid))
                    continue
                p.fillRect(r, heat_colour(v / top))
        # Legend.
        y = hh + len(a.layers) * CELL_H + 8
        width = self._legend_width()
        grad = QLinearGradient(lw, 0, lw + width, 0)
        for t, c in _VIRIDIS:
            grad.setColorAt(t, QColor(*c))
        p.fillRect(QRect(lw, y, width, 10), grad)
        p.setPen(text)
        p.drawText(QRect(lw, y + 12, width, 18), Qt.AlignmentFlag.AlignLeft, "0")
        p.drawText(QRect(lw, y + 12, width, 18), Qt.AlignmentFlag.AlignRight, f"{a.max_norm:.3g}")
        p.drawText(QRect(lw, y + 30, max(0, self.width() - lw), 18), Qt.AlignmentFlag.AlignLeft, LEGEND_CAPTION)

    def mouseMoveEvent(self, event) -> None:
        cell = self._cell_at(event.position().toPoint())
        a = self.anatomy
        if cell is None or a is None:
            QToolTip.hideText()
            return
        i, j = cell
        name = a.full_names[i][j]
        if name is None:
            QToolTip.hideText()
            return
        v = a.norms[i][j]
        norm = f"{v:.4g}" if v is not None else "not a low-rank update"
        scale = a.scales[i][j]
        QToolTip.showText(event.globalPosition().toPoint(),
                          plain_tip(f"{name}\n‖ΔW‖_F = {norm}\nrank {a.ranks[i][j]}, scale {scale:.4g}"), self)
