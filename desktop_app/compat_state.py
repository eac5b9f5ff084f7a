"""The library's verdicts against the loaded model, for AppState: checked off the GUI thread, the mix's
adapters first; adapters that do not fit are held off in the mix with the check's reason, and
generations asked for while a newly loaded model's mix is being checked wait for its verdicts."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import library_access as lib

if TYPE_CHECKING:
    from adapters_backend.core.compat import Verdict

log = logging.getLogger(__name__)


class CompatChecking:
    """Mixed into AppState, whose attributes (model, jobs, compat, mix_model, library_model, the
    compat_changed and mix_checked signals, _release_held) it uses."""

    def refresh_compat(self) -> None:
        """Check every library adapter against the loaded model (off the GUI thread)."""
        if self._compat_job is not None and not self._compat_job.done:
            self._compat_job.cancel()
        if self.model is None:
            # Forget the running check too: its verdicts (for the previous model) must not land later.
            self._compat_job = None
            self.compat, self._compat_model = {}, None
            self._apply_unfit()
            self._mix_ready()
            self.compat_changed.emit()
            return
        # The mix's switched-on adapters first: a generation held back after a model change waits
        # only for them (the other cards get their verdicts with the rest of the library).
        in_mix = {e.adapter_id for e in self.mix_model.entries() if e.enabled}
        entries = sorted(self.library_model.entries(), key=lambda e: e.id not in in_mix)
        first = sum(e.id in in_mix for e in entries)
        job = self.jobs.start(lib.check_all, entries, self.model.path, self.model.engine, first)
        self._compat_job = job
        if not first:
            self._mix_ready()               # nothing in the mix to wait for
        job.signals.partial.connect(lambda res, j=job: self._on_compat_checked(j, res, partial=True))
        job.signals.result.connect(lambda res, j=job: self._on_compat_checked(j, res))
        job.signals.error.connect(lambda exc, j=job: self._on_compat_failed(j, exc))

    def _on_compat_checked(self, job, result: dict[str, Verdict], partial: bool = False) -> None:
        if job is not self._compat_job or self.model is None:
            return
        same_model = self._compat_model == self.model.path
        # A partial result (the mix's verdicts) adds to what is known for this model; verdicts for
        # the previous model are dropped.
        self.compat = {**self.compat, **result} if partial and same_model else dict(result)
        self._compat_model = self.model.path
        self._apply_unfit()
        self._mix_ready()
        self.compat_changed.emit()

    def _on_compat_failed(self, job, exc) -> None:
        if job is not self._compat_job:
            return                          # superseded by a newer check
        if type(exc).__name__ != "JobCancelled":
            log.warning("compatibility check failed: %s", exc)
        self._mix_ready()                   # unknown verdicts do not block; the engine checks again

    def _apply_unfit(self) -> None:
        """Adapters that do not fit the loaded model are held off in the mix, with the check's reason."""
        self.mix_model.set_unfit({aid: short_reason(v.reason) for aid, v in self.compat.items() if not v.usable})

    def _mix_ready(self) -> None:
        if not self._mix_checked:
            self._mix_checked = True
            self._release_held()
            self.mix_checked.emit()

    @property
    def checking_mix(self) -> bool:
        """Whether the mix is being checked against a newly loaded model (generations wait for it)."""
        return not self._mix_checked


def short_reason(reason: str) -> str:
    """A verdict's reason as a mixer card says it: without the verdict word, the first reason only
    ("incompatible: hidden size: …; shape mismatch …" → "hidden size: …")."""
    text = reason.removeprefix("incompatible: ").removeprefix("incompatible")
    return text.split("; ")[0].strip() or "it does not fit this model"
