"""The answer being written, saved as it grows: a crash, a killed process or a power cut then loses
neither the question nor the answer so far (it comes back marked interrupted, to continue).

The conversation list is told an answer is being written (so any write of that chat, a rename or a
draft too, keeps the answer so far); the conversation is saved when the answer starts (the question;
the list moves it to the top) and every SAVE_EVERY_S while it is written, in place; a chat whose save
takes long is saved less often, so saving takes at most SAVE_SHARE of the GUI thread's time
(bench/bench_chat_save.py). The chat saves it once more when the answer ends.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer

from ..conversation_store import Conversation, Message

SAVE_EVERY_S = 5.0          # how often the answer being written is saved …
SAVE_SHARE = 0.02           # … or less often, so that saving a long chat takes at most this share of the time


class AnswerSaver(QObject):
    def __init__(self, conversations, parent=None):
        """`conversations`: the ConversationListModel that writes them."""
        super().__init__(parent)
        self.conversations = conversations
        self._conv: Conversation | None = None
        self._answer: Message | None = None
        self._saved_chars = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._save)

    def start(self, conv: Conversation, answer: Message) -> None:
        """`answer`: a new answer (not in `conv` yet), or `conv`'s last message being continued."""
        self._conv, self._answer = conv, answer
        self.conversations.begin_answer(conv, answer)
        self._saved_chars = len(answer.content)
        self._timer.start(int(1000 * SAVE_EVERY_S))

    def flush(self) -> None:
        """Save the answer so far now (LoRA Deck is quitting while it is written)."""
        if self._answer is not None:
            self._saved_chars = -1
            self._save()

    def stop(self) -> None:
        """The answer ended: the chat saves the conversation as it is now."""
        self._timer.stop()
        self._conv = self._answer = None
        self.conversations.end_answer()

    def _save(self) -> None:
        conv, answer = self._conv, self._answer
        if answer is None or self.conversations.row_of(conv.id) < 0:      # the chat was deleted: not written back
            return
        took = 0.0
        if len(answer.content) != self._saved_chars:
            t0 = time.perf_counter()
            self.conversations.save_in_place(conv)
            took, self._saved_chars = time.perf_counter() - t0, len(answer.content)
        self._timer.start(int(1000 * max(SAVE_EVERY_S, took / SAVE_SHARE)))
