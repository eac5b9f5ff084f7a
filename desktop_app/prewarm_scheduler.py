"""When to read the conversation ahead under the current mix (pre-warm), and what the status bar says.

- The mix changed (a slider, an adapter switched on or off, a preset): wait until it has not changed
  for SETTLE_MS, then ask the engine host to pre-warm the open conversation under the new mix. A
  further change stops a running pre-warm at its next chunk and starts the wait again.
- An answer finished, or another conversation was opened: pre-warm at once (after an answer there is
  usually nothing left to read; the engine then just keeps a snapshot of the mix). After an answer,
  the mix used before the current one is brought up to date too, quietly, when the engine still
  holds most of the conversation under it: someone alternating two mixes then pays for one turn,
  not two (the engine reads nothing for it otherwise, see `min_reuse`).
- Never while the engine generates or loads: the request waits until the engine says it is free
  (its "busy" report can arrive a moment after the answer's end, which asks for the after-answer
  pre-warm; without the wait that pre-warm was sometimes dropped). Nor while a newly loaded model's mix is being checked (an adapter
  that does not fit would fail the read): the check's end brings the chance. The host itself stops
  a pre-warm as soon as a generation is asked for, and that generation continues from what the
  pre-warm read.

Nothing here blocks: the engine host does the work on its thread and reports progress by signal.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

SETTLE_MS = 300
DONE_MESSAGE_MS = 4000
PREVIOUS_MIX_MIN_REUSE = 0.5           # bring the previous mix up to date only if it holds this much


def reading_text(done: float, total: float, new_mix: bool) -> str:
    where = "the new mix" if new_mix else "this mix"
    return f"Reading the conversation under {where} … {int(done):,}/{int(total):,} tokens"


class PrewarmScheduler(QObject):
    status_changed = Signal(str, int)          # text for the status bar ("" clears), timeout in ms (0: stays)

    def __init__(self, state, conversation: Callable[[], list | None], parent=None):
        """`conversation()` gives the open conversation as [(role, content)] (None or []: nothing)."""
        super().__init__(parent)
        self.state = state
        self._conversation = conversation
        self._job: int | None = None            # the pre-warm running or queued on the host
        self._new_mix = False                  # the pending/running pre-warm follows a mix change
        self._showing = False                  # a "reading …" text is on the status bar
        self._quiet = False                    # the running pre-warm is for the previous mix
        self._after_answer = False             # the pending pre-warm follows an answer
        self._last_mix: list | None = None     # the mix of the last pre-warm of the current mix …
        self._previous_mix: list | None = None  # … and the different one before it
        self._followup: list | None = None     # the previous mix, to bring up to date next
        self._after_check = False              # a pre-warm waits for the mix check to end
        self._after_busy = False               # … or for the engine to finish what it is doing
        self._timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        host = state.host
        host.prewarm_progressed.connect(self._on_host_prewarm_progressed)
        host.prewarm_finished.connect(self._on_host_prewarm_finished)
        host.prompt_progressed.connect(self._on_host_prompt_progressed)
        host.generation_finished.connect(self._on_host_generation_ended)
        host.generation_failed.connect(self._on_host_generation_ended)
        state.mix_model.mix_edited.connect(self.mix_changed)
        state.model_changed.connect(self._on_state_model_changed)
        state.mix_checked.connect(self._on_state_mix_checked)
        state.busy_changed.connect(self._on_state_busy_changed)

    @property
    def pending(self) -> bool:
        """A pre-warm is waiting for the mix to settle, or running."""
        return self._timer.isActive() or self._job is not None or self._after_busy

    # ------------------------------------------------------------------ triggers
    def mix_changed(self) -> None:
        if self._job is not None:
            self.state.host.cancel_prewarm()
            self._job = None
        self._new_mix = True
        self._after_answer = False
        self._followup = None
        self._timer.start(SETTLE_MS)

    def conversation_changed(self) -> None:
        """An answer finished, or the user opened another conversation: read it now."""
        self._after_answer = True
        self._timer.start(0)

    def _on_host_generation_ended(self, *_args) -> None:
        self._new_mix = False                  # the answer was read under the mix in use
        if self._showing:                      # the answer took over what a pre-warm was reading
            self._showing = False
            self.status_changed.emit("", 0)

    def _on_state_model_changed(self) -> None:
        self._timer.stop()
        self._job = None
        self._after_busy = False

    def _on_state_busy_changed(self, busy: bool) -> None:
        if not busy and self._after_busy:
            self._after_busy = False
            self._timer.start(0)

    def _on_state_mix_checked(self) -> None:
        if self._after_check:
            self._after_check = False
            self._timer.start(0)

    # ------------------------------------------------------------------ running
    def _enabled(self) -> bool:
        s = self.state
        return (bool(s.settings.prewarm) and s.model is not None and bool(s.capability("kv_snapshots"))
                and not s.busy and s.loading is None)

    def _on_timer_timeout(self) -> None:
        if not self._enabled():
            self._after_busy = self.state.busy and self.state.model is not None
            return
        if self.state.checking_mix:
            self._after_check = True
            return
        messages = self._conversation() or []
        if not any(role in ("user", "assistant") for role, _c in messages):
            return
        if self._job is not None:
            self.state.host.cancel_prewarm()
        mix = self.state.engine_mix()
        if mix != self._last_mix:
            self._previous_mix, self._last_mix = self._last_mix, mix
        self._followup = self._previous_mix if self._after_answer else None
        self._after_answer = False
        self._quiet = False
        self._job = self.state.prewarm(messages, mix)

    def _on_host_prewarm_progressed(self, job: int, done: float, total: float) -> None:
        if job != self._job or self._quiet:
            return
        self._showing = True
        self.status_changed.emit(reading_text(done, total, self._new_mix), 0)

    def _on_host_prewarm_finished(self, job: int, result) -> None:
        if job != self._job:
            return
        self._job = None
        if self._quiet:
            return
        complete = bool(result and result.get("complete"))
        followup, self._followup = self._followup, None
        if complete and followup is not None and followup != self._last_mix and self._enabled():
            messages = self._conversation() or []
            self._quiet = True
            self._job = self.state.prewarm(messages, followup, PREVIOUS_MIX_MIN_REUSE)
        if self._showing or (complete and self._new_mix):
            where = "the new mix" if self._new_mix else "this mix"
            self.status_changed.emit(f"Conversation read under {where}: the next answer starts at once"
                                     if complete else "", DONE_MESSAGE_MS if complete else 0)
        self._showing = False
        if complete:
            self._new_mix = False

    def _on_host_prompt_progressed(self, _request: int, done: float, total: float) -> None:
        """A Send that has to read part of the conversation first (a pre-warm had not finished)."""
        self._showing = True
        self.status_changed.emit(reading_text(done, total, self._new_mix) + " — the answer follows", 0)


__all__ = ["SETTLE_MS", "PrewarmScheduler", "reading_text"]
