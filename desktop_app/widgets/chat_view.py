"""The chat: conversations on the left, the transcript with streaming replies, the prompt box.

Replies stream from EngineHost through a StreamCollector, which paints them at most every
FLUSH_MS, so a fast engine never floods the event loop. Every finished reply saves the
conversation (atomically), with the model, the mix and the speed it was made with; while it is
written, AnswerSaver keeps the question and the answer so far on disk.
"""
from __future__ import annotations

import random
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from adapters_backend.errors import BackendError

from .. import library_access as lib
from ..conversation_store import INTERRUPTED, Conversation, Message
from ..stream_collector import Arrival, StreamCollector
from .answer_saver import AnswerSaver
from .chat_again import AskingAgain
from .chat_input import ChatInput, thinking_choice
from .chat_reply import StreamedReply, continued_info, info_text, title_from
from .conversation_list import ConversationList
from .draft_keeper import DraftKeeper
from .export_chat import export_chat
from .message_widget import MessageWidget
from .sampling_panel import SamplingPanel
from .transcript import Transcript

CONTINUABLE = ("length", "cancelled", INTERRUPTED)   # how an answer that can be written further ended


class ChatView(AskingAgain, QWidget):
    status_message = Signal(str)            # tokens/s, context use … for the status bar
    conversation_settled = Signal()         # an answer ended or another conversation is open: read it ahead

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.conversation: Conversation | None = None
        self._request_id: int | None = None
        self._reply: MessageWidget | None = None
        self._going_on = False                     # the reply continues the last answer
        self._reply_conv: Conversation | None = None   # the conversation it answers (another may be open by its end)
        self._reply_pane: StreamedReply | None = None
        self._reply_msg: Message | None = None
        self._arrival: Arrival | None = None      # the latest reply's tokens as they reached the GUI
        self._t_request: float | None = None
        self._saver = AnswerSaver(state.conversations, self)
        self._drafts = DraftKeeper(self)
        self._build()
        self.collector = StreamCollector(state.host, self)
        self.collector.one_finished.connect(self._on_reply_finished)
        state.model_changed.connect(self._update_banner)
        state.model_changed.connect(self._update_think_box)
        state.model_changed.connect(self._update_enabled)
        state.compat_changed.connect(self._on_compat_changed)
        self._update_banner()
        self._update_think_box()
        self._update_enabled()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.sidebar = ConversationList(self.state.conversations)
        self.sidebar.new_requested.connect(self.new_chat)
        self.sidebar.conversation_selected.connect(self._on_sidebar_conversation_selected)
        self.sidebar.delete_requested.connect(self.delete_conversation)
        self.sidebar.export_requested.connect(
            lambda row: export_chat(self, self.state.conversations.conversation(row), self.state))

        # Main column.
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setOpenExternalLinks(False)
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner.setAutoFillBackground(True)
        self.banner.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.banner.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.banner.setContentsMargins(8, 6, 8, 6)
        self.banner.setAccessibleName("Model note")

        self.system_toggle = QToolButton()
        self.system_toggle.setText("System prompt")
        self.system_toggle.setCheckable(True)
        self.system_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.system_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.system_toggle.setAutoRaise(True)
        self.system_toggle.setAccessibleName("Show system prompt")
        self.system_edit = QPlainTextEdit()
        self.system_edit.setPlaceholderText("Instructions the model sees before the conversation (optional)")
        self.system_edit.setAccessibleName("System prompt")
        self.system_edit.setMaximumHeight(80)
        self.system_edit.setVisible(False)
        self.system_toggle.toggled.connect(self._on_system_toggle_toggled)
        self.system_edit.textChanged.connect(self._on_system_edit_changed)

        self.scroll = Transcript(self._make_widget)
        self.transcript, self.transcript_layout = self.scroll.widget(), self.scroll.box
        self.window_marker = self.scroll.window_marker
        self.empty_label = QLabel("Type a message below and press Enter.\n"
                                  "Add adapters on the right and move their sliders to change how the model answers.")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.empty_label.setWordWrap(True)
        self.scroll.insert_header(0, self.empty_label)
        # Suggested prompts (the demo model knows these) under the empty-chat hint.
        self.suggestions = QWidget()
        self.suggestions_layout = QHBoxLayout(self.suggestions)
        self.suggestions_layout.setContentsMargins(0, 0, 0, 0)
        self.scroll.insert_header(1, self.suggestions)

        self.sampling = SamplingPanel(self.state.settings.default_sampling())

        self.input = ChatInput(self.state.settings)
        self.prompt, self.think_box = self.input.prompt, self.input.think_box
        self.send_button, self.stop_button = self.input.send_button, self.input.stop_button
        self.prompt.submitted.connect(self.send)
        self.prompt.textChanged.connect(lambda: self._drafts.typed())
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)

        main = QWidget()
        ml = QVBoxLayout(main)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.banner)
        ml.addWidget(self.system_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        ml.addWidget(self.system_edit)
        ml.addWidget(self.scroll, 1)
        ml.addWidget(self.sampling)
        ml.addWidget(self.input)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(main)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([190, 700])
        self.splitter.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)

    # ------------------------------------------------------------------ state
    @property
    def generating(self) -> bool:
        return self._request_id is not None

    def _update_enabled(self) -> None:
        ready = self.state.model is not None
        self.send_button.setEnabled(ready and not self.generating)
        self.stop_button.setEnabled(self.generating)
        widgets = self._message_widgets()
        for w in widgets:
            w.set_actions_enabled(ready and not self.generating)
            w.set_continue_visible(w is widgets[-1] and self._can_continue(w))

    def _can_continue(self, widget: MessageWidget) -> bool:
        """An answer cut short (at Max tokens, by Stop, or by the end of LoRA Deck while it was written)
        can be written further, by an engine that goes on from a text."""
        caps = self.state.capabilities() if self.state.model is not None else None
        msg = widget.message
        return (not self.generating and widget.role == "assistant" and msg is not None and bool(msg.content)
                and msg.info.get("finish") in CONTINUABLE and getattr(caps, "continue_answer", False))

    def _update_think_box(self) -> None:
        self.input.show_think_box(self.state.model.info if self.state.model is not None else None)

    def _update_banner(self) -> None:
        note = self.state.model_note()
        self.banner.setText(note)
        self.banner.setVisible(bool(note))
        self._fill_suggestions()

    def _fill_suggestions(self) -> None:
        while self.suggestions_layout.count():
            item = self.suggestions_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        prompts = lib.demo_prompts()[:4] if self.state.is_demo_loaded() else []
        self.suggestions_layout.addStretch(1)
        for text in prompts:
            b = QPushButton(text)
            b.setFlat(False)
            b.setToolTip("Ask this")
            b.setAccessibleName(f"Suggested prompt: {text}")
            b.clicked.connect(lambda _=False, t=text: self._ask(t))
            self.suggestions_layout.addWidget(b)
        self.suggestions_layout.addStretch(1)
        self.suggestions.setVisible(bool(prompts) and not self._message_widgets())

    def _ask(self, text: str) -> None:
        self.prompt.setPlainText(text)
        self.send()

    def _message_widgets(self) -> list[MessageWidget]:
        return self.scroll.message_widgets()

    def set_format_answers(self, on: bool) -> None:
        """View → Format answers: remembered, and applied to the answers shown."""
        self.state.settings.set("appearance/format_answers", bool(on))
        for w in self._message_widgets():
            w.set_formatted(on)

    # ------------------------------------------------------------------ conversations
    def new_chat(self) -> None:
        if self.generating:
            self.stop()
        conv = Conversation.new(self.system_edit.toPlainText() if self.conversation is None
                                else self.conversation.system_prompt)
        self.state.conversations.add(conv)
        self.sidebar.select_row(0)
        self.prompt.setFocus()

    def open_conversation(self, conv: Conversation | None) -> None:
        if self.generating:
            self.stop()                            # it ends later, into its own conversation
            self._reply_pane.detach()              # whose widgets go now
        self._drafts.save()                        # what was typed stays with the chat it was typed in
        previous, self.conversation = self.conversation, conv
        self._drafts.show(previous, conv)
        self.system_edit.blockSignals(True)
        self.system_edit.setPlainText(conv.system_prompt if conv else "")
        self.system_edit.blockSignals(False)
        self.scroll.load([m for m in conv.messages if m.role in ("user", "assistant")] if conv else [])
        self._place_window_marker()
        self._refresh_regenerate()
        self._update_enabled()
        self.conversation_settled.emit()

    def before_quit(self) -> None:
        """Save what is typed and the answer so far, as they are."""
        self._drafts.save()
        self._saver.flush()

    def prewarm_messages(self) -> list[tuple[str, str]] | None:
        """The open conversation as the engine will get it (None: none open, or an answer is running)."""
        if self.conversation is None or self.generating:
            return None
        return self.conversation.chat_messages()

    def select_first_conversation(self) -> None:
        self.sidebar.select_first()

    def select_after_reset(self) -> None:
        """The saved conversations are in: the one open stays open (started while they were read),
        else the most recent opens."""
        row = -1 if self.conversation is None else self.state.conversations.row_of(self.conversation.id)
        self.sidebar.select_row(max(row, 0))

    def export_open(self) -> None:
        export_chat(self, self.conversation, self.state)

    def _on_sidebar_conversation_selected(self, conv) -> None:
        if conv is not self.conversation:
            self.open_conversation(conv)

    def delete_conversation(self, row: int) -> None:
        conv = self.state.conversations.conversation(row)
        if conv is self.conversation:
            self._drafts.drop_pending()
            self.open_conversation(None)
        self.state.conversations.remove(row)
        self.select_first_conversation()

    def _on_system_toggle_toggled(self, on: bool) -> None:
        self.system_edit.setVisible(on)
        self.system_toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def _on_system_edit_changed(self) -> None:
        if self.conversation is not None:
            self.conversation.system_prompt = self.system_edit.toPlainText()
            self._drafts.changed()

    # ------------------------------------------------------------------ sending
    def send(self) -> None:
        text = self.prompt.toPlainText().strip()
        if not text or self.generating or self.state.model is None:
            return
        if self.conversation is None:
            self.new_chat()
        conv = self.conversation
        if not any(m.role == "user" for m in conv.messages) and conv.title == Conversation.title:
            conv.title = title_from(text)          # unless the user named the chat already
        msg = Message("user", text)
        conv.messages.append(msg)
        self._append_widget(msg)
        self.prompt.clear()
        self._start_reply()

    def _start_reply(self, going_on: MessageWidget | None = None) -> None:
        """Answer the conversation; `going_on`: the last answer's widget, whose answer is continued."""
        conv = self.conversation
        messages = conv.chat_messages()
        params = self.sampling.params()
        params["thinking"] = thinking_choice(self.state)       # None: the template decides
        if params.get("seed", -1) < 0:
            # "Random": a fresh seed for every answer (a regenerate gives another answer), recorded
            # with the answer so it can be made again.
            params["seed"] = random.randrange(2**31 - 1)
        for w in self._message_widgets():
            w.set_unanswered("")
            if w.message is not None:
                w.message.info.pop("unanswered", None)
        self._going_on = going_on is not None
        self._reply_conv = conv
        if going_on is not None:
            self._reply_msg, self._reply = going_on.message, going_on
            before = dict(self._reply_msg.info)
        else:
            self._reply_msg = Message("assistant", "", {})
            self._reply = self._append_widget(self._reply_msg)
            self._place_window_marker()            # an edit or a regenerate may have removed its place
            self._reply.set_model(self.state.model_label())
        self._reply.set_info("checking the adapters against the model…" if self.state.checking_mix else "…")
        self._t_request = time.perf_counter()
        self.scroll.stick_to_bottom = True
        self._request_id = self.state.generate(messages, params, fit_context=True)
        pane = self._reply_pane = StreamedReply(self._reply_msg, self._reply)
        self._arrival = pane.arrival = self.collector.track(self._request_id, pane)
        self._reply_msg.info = {"model": self.state.model_label(), "mix": self.state.mix_summary(),
                                "seed": params.get("seed"), "max_tokens": params.get("max_tokens")}
        if going_on is not None:
            self._reply_msg.info = continued_info(before, self._reply_msg.info)
        self._saver.start(conv, self._reply_msg)   # the question, before a word of the answer
        self._drafts.drop_pending()                # (saved with it)
        self._refresh_regenerate()
        self._update_enabled()

    def _on_compat_changed(self) -> None:
        if self._reply is not None and not self._reply_msg.content and not self.state.checking_mix:
            self._reply.set_info("…")

    def stop(self) -> None:
        if self.generating:
            self.state.cancel_generation()

    # ------------------------------------------------------------------ streaming
    def _on_reply_finished(self, _pane, stats, error) -> None:
        self._finish_reply(stats, error)
        if error is not None and not isinstance(error, BackendError):
            self.state.errors.report(error, "Generating a reply")     # a bug: shown with its details too

    def _finish_reply(self, stats, error=None) -> None:
        self._saver.stop()
        msg, widget = self._reply_msg, self._reply
        self._request_id = None
        self._reply = self._reply_msg = None
        info = dict(msg.info)
        written = info.pop("tokens_before", 0)                 # what a continued answer had already
        if stats is not None:
            info.update({"tokens": written + stats.tokens, "tokens_per_second": round(stats.tokens_per_second, 2),
                         "gui_tokens": self._arrival.tokens, "finish": stats.finish_reason})
            if stats.left_out is not None:
                info["left_out"] = stats.left_out
        if error is not None:
            info["error"] = self.state.describe_error(error)
        msg.info = info
        # The answer belongs to the conversation it was asked in: another one may be open by now (the
        # user picked it, which stopped this answer), and this one's widgets are gone with it.
        conv, self._reply_conv = self._reply_conv, None
        shown = conv is self.conversation
        if shown:
            widget.set_info(info_text(info))
            widget.settle()
        if self._going_on:                          # the answer is in the conversation already
            if shown:
                widget.set_model(info.get("model", ""))
        elif msg.content or stats is not None:
            conv.messages.append(msg)
        else:
            # No answer at all: the question stays, says why, and offers Retry; it is saved with its
            # reason, so what the user wrote (a pasted document, say) outlives a restart.
            if shown:
                self.scroll.remove(widget)
            asked = [m for m in conv.messages if m.role == "user"]
            if asked and error is not None:
                asked[-1].info = {**asked[-1].info, "unanswered": info["error"]}
                for w in self._message_widgets() if shown else []:
                    if w.message is asked[-1]:
                        w.set_unanswered(info["error"])
        if self.state.conversations.row_of(conv.id) >= 0:    # not deleted meanwhile: never written back
            self.state.conversations.save(conv)
        if stats is not None:
            self.status_message.emit(self._status_text(stats))
        self.scroll.trim()                         # first: the line is placed among the widgets left
        self._place_window_marker()
        self._refresh_regenerate()
        self._update_enabled()
        if error is None:
            self.conversation_settled.emit()

    def _status_text(self, stats) -> str:
        parts = [f"{stats.tokens} tokens", f"{stats.tokens_per_second:.1f} tok/s"]
        n_ctx = self.state.context_size()
        if stats.prompt_tokens is not None and n_ctx:
            used = stats.prompt_tokens + stats.tokens
            parts.append(f"context {used}/{n_ctx} ({100 * used / n_ctx:.0f}%)")
        if stats.cancelled:
            parts.append("stopped")
        return " · ".join(parts)

    # ------------------------------------------------------------------ transcript helpers
    def _place_window_marker(self) -> None:
        """Show where the model's view of the chat begins, as of the latest answer (left_out: the oldest
        messages it was not given; see adapters_backend.engines.context_window)."""
        answers = [m for m in (self.conversation.messages if self.conversation else [])
                   if m.role == "assistant" and "left_out" in m.info]
        left_out = answers[-1].info.get("left_out", 0) if answers else 0
        left_out = left_out if isinstance(left_out, int) else 0          # a hand-edited file: no line
        n_ctx = self.state.context_size()
        self.scroll.place_window_marker(left_out, (
            f"The model no longer sees the {left_out} message{'s' if left_out != 1 else ''} above: this chat "
            f"outgrew its context{f' of {n_ctx:,} tokens' if n_ctx else ''}, so the oldest turns are left out."))

    def _append_widget(self, msg: Message) -> MessageWidget:
        self.empty_label.hide()
        self.suggestions.hide()
        w = self._make_widget(msg)
        self.scroll.append(w)
        return w

    def _make_widget(self, msg: Message) -> MessageWidget:
        w = MessageWidget(msg.role, msg.content, info_text(msg.info) if msg.role == "assistant" else "",
                          formatted=self.state.settings.format_answers)
        w.message = msg
        if msg.role == "assistant":
            w.set_model(msg.info.get("model", ""))
        elif msg.info.get("unanswered"):
            w.set_unanswered(str(msg.info["unanswered"]))
        w.edit_submitted.connect(self._on_message_edit_submitted)
        w.regenerate_requested.connect(self.regenerate)
        w.continue_requested.connect(self.continue_answer)
        w.set_actions_enabled(self.state.model is not None and not self.generating)
        return w

    def _refresh_regenerate(self) -> None:
        widgets = self._message_widgets()
        for i, w in enumerate(widgets):
            last = i == len(widgets) - 1 and not self.generating
            w.set_regenerate_visible(last and w.role == "assistant")
            w.set_retry_visible(last and w.role == "user")        # a question left without an answer
        self.empty_label.setVisible(not widgets)
        self.suggestions.setVisible(not widgets and self.suggestions_layout.count() > 2)

    # ------------------------------------------------------------------ for tests and the main window
    def transcript_texts(self) -> list[tuple[str, str]]:
        return [(w.role, w.text()) for w in self._message_widgets()]

    def last_reply_text(self) -> str:
        ws = [w for w in self._message_widgets() if w.role == "assistant"]
        return ws[-1].text() if ws else ""
