"""Dialogs and message boxes are made for one opening and deleted once closed.

Made anew at each opening and parented to a widget that lives as long as the app, a closed dialog
would otherwise stay behind as a hidden child for good: every error box of a long session, every
opening of Settings (which went on updating its label on each change of the snapshot store). A
dialog's connections to the app must then be methods, which Qt disconnects with it, not lambdas.
"""
from __future__ import annotations


def open_once(dialog):
    """Open `dialog` (non-blocking); it is deleted after it closes. Returns it."""
    from PySide6.QtCore import Qt

    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


__all__ = ["open_once"]
