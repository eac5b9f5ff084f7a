"""Light or dark: follow the system's colour scheme (the default), or the one chosen in Settings.
A chosen theme is applied before the window is built; "system" once it is painted (asking the
platform for its scheme costs a D-Bus round trip on Linux).

Every widget takes its colours from the palette, so a theme is a palette. "system" leaves Qt's own
platform palette alone (macOS, Windows and most Linux desktops switch it with the system), except where
the platform says "dark" but its palette is still light (a bare X session, some window managers):
there, and for an explicit choice, the Fusion style gets a palette of ours.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

THEMES = {"system": "Same as the system", "light": "Light", "dark": "Dark"}

_DARK = {"Window": "#2b2b2b", "WindowText": "#e6e6e6", "Base": "#1e1e1e", "AlternateBase": "#333333",
         "ToolTipBase": "#3a3a2a", "ToolTipText": "#f0f0d0", "Text": "#e6e6e6", "Button": "#353535",
         "ButtonText": "#e6e6e6", "BrightText": "#ff6b6b", "Highlight": "#2a82da", "HighlightedText": "#ffffff",
         "Link": "#6cb4ff", "PlaceholderText": "#9a9a9a", "Mid": "#555555", "Midlight": "#444444",
         "Light": "#505050", "Dark": "#202020", "Shadow": "#111111"}
_DARK_DISABLED = {"Text": "#777777", "ButtonText": "#777777", "WindowText": "#777777",
                  "HighlightedText": "#aaaaaa", "Highlight": "#3a3a3a"}


class _Applied:
    style: str | None = None          # the style Qt chose before we first set one
    choice: str | None = None
    ours = False                      # a palette of ours is set (not the platform's)
    listening = False


def dark_palette() -> QPalette:
    p = QPalette()
    for role, colour in _DARK.items():
        p.setColor(getattr(QPalette.ColorRole, role), QColor(colour))
    for role, colour in _DARK_DISABLED.items():
        p.setColor(QPalette.ColorGroup.Disabled, getattr(QPalette.ColorRole, role), QColor(colour))
    return p


def is_dark(palette: QPalette | None = None) -> bool:
    p = palette or QGuiApplication.palette()
    return p.color(QPalette.ColorRole.Window).lightness() < 128


def system_prefers_dark(app) -> bool:
    hints = app.styleHints()
    return hasattr(hints, "colorScheme") and hints.colorScheme() == Qt.ColorScheme.Dark


def apply(app, choice: str = "system") -> None:
    """Make `app` light or dark as `choice` ("system", "light", "dark") says; with "system" it follows
    later changes of the system's scheme too."""
    if choice not in THEMES:
        choice = "system"
    if _Applied.style is None:
        _Applied.style = app.style().name()
    _Applied.choice = choice
    hints = app.styleHints()
    if not _Applied.listening and hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(lambda _scheme: _Applied.choice == "system" and apply(app, "system"))
        _Applied.listening = True
    if choice == "system":
        # The platform's own palette (untouched at start-up); ours only where it stays light on a
        # dark system.
        if _Applied.ours:
            _set(app, _Applied.style, QPalette())
            _Applied.ours = False
        if system_prefers_dark(app) and not is_dark(app.palette()):
            _set(app, "Fusion", dark_palette())
            _Applied.ours = True
        return
    _set(app, "Fusion", dark_palette() if choice == "dark" else _light_palette(app))
    _Applied.ours = True


def _light_palette(app) -> QPalette:
    from PySide6.QtWidgets import QStyleFactory
    style = QStyleFactory.create("Fusion")
    return style.standardPalette()


def _set(app, style_name: str, palette: QPalette) -> None:
    if app.style().name().lower() != style_name.lower():
        app.setStyle(style_name)
    app.setPalette(palette)
