"""What is typed but not sent — the message box and the system prompt — belongs to its chat.

It is kept with the conversation: saved DRAFT_SAVE_MS after the last key, when another chat opens and
when LoRA Deck quits (without moving the chat in the list: a draft is not a change of the
conversation). So opening another chat does not carry a half-written message into it (where Enter
would send it), and a restart or a crash finds it again.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

DRAFT_SAVE_MS = 1500


class DraftKeeper(QObject):
    def __init__(self, chat):
        """`chat`: the ChatView (its `conversation`, `prompt` and `state`)."""
        super().__init__(chat)
        self.chat = chat
        self._unsaved = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DRAFT_SAVE_MS)
        self._timer.timeout.connect(self.save)

    def typed(self) -> None:
        conv, text = self.chat.conversation, self.chat.prompt.toPlainText()
        if conv is not None and conv.draft != text:
            conv.draft = text
            self.changed()

    def changed(self) -> None:
        """The open chat's draft or system prompt changed: saved once typing pauses."""
        self._unsaved = True
        self._timer.start()

    def drop_pending(self) -> None:
        """The open chat was just written whole (its question sent), or is being deleted: nothing of it
        is left to save."""
        self._unsaved = False
        self._timer.stop()

    def save(self) -> None:
        self._timer.stop()
        conv = self.chat.conversation
        conversations = self.chat.state.conversations
        if not self._unsaved or conv is None or conversations.row_of(conv.id) < 0:
            return
        self._unsaved = False
        conversations.save_in_place(conv, touch=False)      # (with the answer being written, if any)

    def show(self, previous, conv) -> None:
        """`conv` opened (after `previous`, saved before): its draft goes into the message box. Text typed
        with no chat open (LoRA Deck still reading the chats) goes with the chat that opens, after that
        chat's own draft if it has one."""
        text = self.chat.prompt.toPlainText()
        if conv is not None and previous is None and text.strip():
            if text != conv.draft:
                conv.draft = f"{conv.draft}\n{text}" if conv.draft.strip() else text
                self.changed()
        self.chat.prompt.setPlainText(conv.draft if conv is not None else "")
