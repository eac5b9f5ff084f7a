"""Editing a message that later messages follow: sending the edit replaces all of them with a new
answer, which silently threw away the rest of a long chat. The user is asked first, and may keep them:
the edit then goes to a copy of the chat up to that message."""
from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from ..plain_text import message_box
from ..transient_dialogs import open_once


def ask_edit_choice(parent, later: int, title: str, replace, copy) -> QMessageBox:
    """Ask (non-blocking) what to do with the `later` messages after an edited one; calls `replace()`
    or `copy()`, or nothing when cancelled. Returns the box."""
    box = message_box(QMessageBox.Icon.Question, "Replace the later messages?",
                      f"{later} messages follow the one you edited. Sending the edit replaces them with a new "
                      f"answer. To keep them, send it in a copy of “{title}” that ends at this message.",
                      QMessageBox.StandardButton.Cancel, parent)
    box.setAccessibleName("Edit an earlier message")
    in_copy = box.addButton("Send in a copy", QMessageBox.ButtonRole.AcceptRole)
    replacing = box.addButton(f"Replace {later} messages", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(in_copy)
    box.buttonClicked.connect(lambda button: copy() if button is in_copy else replace() if button is replacing
                              else None)
    return open_once(box)
