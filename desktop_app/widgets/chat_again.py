"""Asking for an answer again, a part of ChatView (a mixin, kept apart from sending and streaming):
Regenerate (the last answer, anew), Continue (the last answer, further: it was cut short) and
Edit (an earlier question, with the choice of replacing what follows or answering in a copy of the
chat). It uses the view's `conversation`, `generating`, `state`, `scroll`, `sidebar`,
`_message_widgets`, `_append_widget`, `_can_continue` and `_start_reply`."""
from __future__ import annotations

from ..conversation_store import Conversation, Message
from .edit_choice import ask_edit_choice
from .message_widget import MessageWidget


class AskingAgain:
    def regenerate(self) -> None:
        """Answer the last user message again (drops the last reply; Retry of an unanswered message).
        Unless the user fixed a seed, the new answer gets a new one."""
        conv = self.conversation
        if conv is None or self.generating or self.state.model is None:
            return
        if not any(m.role == "user" for m in conv.messages):
            return
        while conv.messages and conv.messages[-1].role == "assistant":
            conv.messages.pop()
        widgets = self._message_widgets()
        while widgets and widgets[-1].role == "assistant":
            self.scroll.remove(widgets.pop())
        self._start_reply()

    def continue_answer(self) -> None:
        """Write more of the last answer, cut short: the engine goes on from its text (the cache
        holds the conversation and the answer so far, so the first new word comes at once)."""
        widgets = self._message_widgets()
        if not widgets or self.state.model is None or not self._can_continue(widgets[-1]):
            return
        self._start_reply(going_on=widgets[-1])

    def _on_message_edit_submitted(self, widget: MessageWidget, text: str) -> None:
        """Edit-and-resend: everything after the edited message is replaced by a new answer; when more
        than its own answer follows, the user chooses first (replace them, or send in a copy)."""
        if self.generating or self.conversation is None:
            return
        conv, msgs = self.conversation, self.conversation.messages
        at = next(i for i, m in enumerate(msgs) if m is widget.message)
        later = len(msgs) - at - 1
        if later <= 1:
            self._replace_from(widget, at, text)
            return
        self.edit_box = ask_edit_choice(
            self, later, conv.title,
            replace=lambda: self.conversation is conv and not self.generating and self._replace_from(widget, at, text),
            copy=lambda: not self.generating and self._send_in_copy(conv, at, text))

    def _replace_from(self, widget: MessageWidget, at: int, text: str) -> None:
        widgets = self._message_widgets()
        self.conversation.messages = self.conversation.messages[:at] + [Message("user", text)]
        for w in widgets[widgets.index(widget):]:
            self.scroll.remove(w)
        self._append_widget(self.conversation.messages[-1])
        self._start_reply()

    def _send_in_copy(self, conv: Conversation, at: int, text: str) -> None:
        """A new chat: `conv` up to its message `at`, then `text`, answered; `conv` stays as it was."""
        copy = Conversation.new(conv.system_prompt)
        copy.title = f"{conv.title} (edited)"
        copy.messages = [Message(m.role, m.content, dict(m.info)) for m in conv.messages[:at]]
        copy.messages.append(Message("user", text))
        self.state.conversations.add(copy)
        self.sidebar.select_row(0)                  # opens it
        self._start_reply()
