"""AppState: the session's only state (loaded model, adapter mix, library, conversations, presets).

Widgets read it and change it through its methods; it owns the job runner and the engine host, so
every long operation starts here and reports back through its signals.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from adapters_backend.errors import BackendError, BaseModelError
from adapters_backend.model_ref import engine_for, is_hub_id, is_url

from . import library_access as lib
from .compat_state import CompatChecking
from .conversation_store import ConversationStore
from .errors import ErrorReporter
from .models.conversation_model import ConversationListModel
from .models.library_model import LibraryTableModel
from .models.mix_model import MixListModel
from .settings import AppSettings
from .workers.engine_host import EngineHost, LoadedModel, LoadRequest
from .workers.job_runner import JobRunner

if TYPE_CHECKING:
    from adapters_backend.core.compat import Verdict
    from adapters_backend.engines.base import ActiveAdapter
    from adapters_backend.library import LibraryEntry
    from adapters_backend.mix_presets import MixEntry, PresetStore

STOPPED_ON_TRIAL = ("LoRA Deck stopped while loading this model, or before its first answer, last time, so it was "
                    "not loaded again at start. Load it from the model picker to try again; if LoRA Deck stops "
                    "again, the file may be damaged or the model too large for this computer.")
UNREAD = object()           # the library has not been read yet
MODEL_GONE = ("the model used last time is no longer there (moved, renamed or deleted), so LoRA Deck opened the "
              "demo model. Open it from where it is now: {how}.")
HOW_TO_GET_A_MODEL = ("To use a real model: <b>File → Open GGUF model…</b> (Ctrl+O), drop a <tt>.gguf</tt> "
                      "file on the window, or find one in the <b>Hub</b> tab.")


def _data_dir() -> Path:
    from adapters_backend.paths import data_dir  # platformdirs, after start-up
    return data_dir()


class AppState(CompatChecking, QObject):
    model_loading = Signal(str)               # label of the model being loaded
    model_load_progressed = Signal(float, float, str)
    model_changed = Signal()                  # a model was loaded (or failed/unloaded)
    library_changed = Signal()
    compat_changed = Signal()
    mix_checked = Signal()                    # a newly loaded model's mix check ended (see checking_mix)
    presets_changed = Signal()
    busy_changed = Signal(bool)               # the engine is generating or loading
    install_progressed = Signal(str, float, float, str)   # source, done, total, message
    install_finished = Signal(str, object, object)        # source, entry | None, error | None
    model_load_failed = Signal(str, str)      # label, user-facing reason
    adapter_installed = Signal(object, object)            # LibraryEntry, its Verdict for the loaded model | None
    kv_stats_changed = Signal()               # what the engine's KV snapshot store holds changed

    def __init__(self, settings: AppSettings | None = None, errors: ErrorReporter | None = None,
                 engine_factory=None, parent=None):
        super().__init__(parent)
        self.settings = settings or AppSettings()
        self.errors = errors or ErrorReporter()
        self.jobs = JobRunner(self)
        self.host = EngineHost(engine_factory)
        self.model: LoadedModel | None = None
        self.loading: str | None = None
        self.loading_path: str | None = None     # the model being loaded
        self._demo_if_it_fails = False          # the start's load of the last model: the demo instead
        self._keyed = False                     # the model being loaded is a server that needs an API key
        self._keep_last = False                 # the demo stands in for a last model that could not be had
        self._library_seen = UNREAD             # the library index's identity as last read (None: no index)
        self.busy = False
        self.compat: dict[str, Verdict] = {}    # adapter id -> its verdict against the loaded model
        self.mix_model = MixListModel(self)
        self.library_model = LibraryTableModel(self)
        # The data folder is resolved on first use (after the window is painted).
        self.conversations = ConversationListModel(ConversationStore(lambda: _data_dir() / "conversations"), self)
        self.conversations.file_problem.connect(self._on_conversation_file_problem)
        self._presets: PresetStore | None = None
        self._compat_job = None
        self._compat_model: str | None = None  # the model path self.compat's verdicts are for
        # Until the mix's verdicts for a newly loaded model are known, generations wait here (with ids
        # the host reserved, so Stop covers them): none of them runs with an adapter known not to fit.
        self._mix_checked = True
        self._held: list[tuple] = []
        self.host.model_loaded.connect(self._on_host_model_loaded)
        self.host.model_load_failed.connect(self._on_host_model_load_failed)
        self.host.generation_finished.connect(self._on_host_generation_finished)
        self.host.load_progressed.connect(self.model_load_progressed)
        self.host.busy_changed.connect(self._on_host_busy_changed)
        self.kv_stats: dict | None = None       # the engine's KV snapshot store (None: none)
        self.host.kv_stats_changed.connect(self._on_host_kv_stats_changed)

    @property
    def presets(self) -> PresetStore:
        if self._presets is None:
            from adapters_backend.mix_presets import PresetStore  # after start-up
            self._presets = PresetStore()
        return self._presets

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """After the window is painted: read conversations and library, load the last (or demo) model."""
        self.conversations.start_loading()
        first_run = not self.settings.get("app/first_run_done", False, bool)
        self._library_seen = lib.index_identity()
        job = self.jobs.start(lib.startup_entries, first_run)
        seq = self._next_library_seq()
        job.signals.result.connect(lambda res: self._on_startup_entries(res, first_run, seq))
        job.signals.error.connect(lambda exc: self.errors.report(exc, "Opening the adapter library"))

    def _next_library_seq(self) -> int:
        self._library_seq = getattr(self, "_library_seq", 0) + 1
        return self._library_seq

    def _fresh_listing(self, seq: int) -> bool:
        """Listing jobs run in parallel and may finish out of order: apply only the newest one started."""
        if seq < getattr(self, "_library_applied", 0):
            return False
        self._library_applied = seq
        return True

    def _on_startup_entries(self, result, first_run: bool, seq: int = 0) -> None:
        entries, demo_ids = result
        if self._fresh_listing(seq):
            self.library_model.set_entries(entries)
            self.library_changed.emit()
        if first_run:
            self.settings.set("app/first_run_done", True)
            for adapter_id in demo_ids:
                self.add_to_mix(adapter_id, enabled=False)
        else:
            self._restore_mix()
        last = self.settings.last_model
        if last and last["path"] == self.settings.model_on_trial:
            self.settings.set_model_on_trial("")
            self.loading = Path(last["path"]).name
            self._on_host_model_load_failed(BaseModelError(last["path"], STOPPED_ON_TRIAL))
        elif last and (Path(last["path"]).exists() or is_url(last["path"]) or is_hub_id(last["path"])):
            # A server or a Hub model is tried too; if it cannot be had now (the server is not running,
            # no network), the reason is said and the demo opens, as it does for a file that is gone.
            self.load_model(last["path"], last["engine"])
            self._demo_if_it_fails = not lib.is_demo_model(last["path"])
        else:
            if last:
                how = ("File → Open model folder…" if last["engine"] == "torch"
                       else "File → Open GGUF model…, or drop it on the window")
                self.errors.report(BaseModelError(last["path"], MODEL_GONE.format(how=how)), "Opening the last model")
            self._load_demo()

    def _load_demo(self) -> None:
        demo = lib.demo_model()
        if demo is not None:
            self.load_model(str(demo), "llama.cpp", label="Demo model")

    # ------------------------------------------------------------------ model
    def load_model(self, path: str, engine: str | None = None, label: str = "", options: dict | None = None) -> None:
        """Load a model file/folder/Hub id, or connect to a server (`path` = its URL, `options` e.g. api_key)."""
        self._demo_if_it_fails = self._keep_last = False
        self._keyed = bool((options or {}).get("api_key"))   # a key is not kept: not reconnected at start
        engine = engine or engine_for(path)
        remote = is_url(path)
        label = label or ("Demo model" if lib.is_demo_model(path)
                          else f"{engine} at {path}" if remote else Path(path).name)
        self.loading, self.loading_path = label, str(path)
        if not remote:    # until it has loaded and answered once: a crash on the way is not repeated at start
            self.settings.set_model_on_trial(str(path))
        self.model_loading.emit(label)
        self.host.load(LoadRequest(str(path), engine, {**self.settings.engine_options(), **(options or {})}, label))

    def _on_host_model_loaded(self, model: LoadedModel) -> None:
        self._demo_if_it_fails = False
        self.loading = self.loading_path = None
        self.model = model
        if not (self._keyed or self._keep_last):
            self.settings.set_last_model(model.path, model.engine)
        self.settings.add_recent_model(model.path, model.engine)
        self._mix_checked = False
        self.kv_stats = None
        self.model_changed.emit()
        self.refresh_compat()

    def _on_host_model_load_failed(self, exc, kept: bool = False) -> None:
        """`kept`: the engine refused the file before closing the model it had, which still answers."""
        label = self.loading or "the model"
        self.loading = self.loading_path = None
        self.settings.set_model_on_trial("")
        if not kept:
            self.model = None
            self.model_changed.emit()
            self.refresh_compat()          # verdicts of the previous model no longer apply
        from .errors import error_text
        self.model_load_failed.emit(label, error_text(exc)[0])
        self.errors.report(exc, f"Loading {label}")
        if self._demo_if_it_fails and not kept:
            self._load_demo()
            self._keep_last = True      # the server or Hub model is tried again at the next start

    def _on_host_generation_finished(self, _stats) -> None:
        if self.settings.model_on_trial:
            self.settings.set_model_on_trial("")

    def _on_host_busy_changed(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)

    def _on_host_kv_stats_changed(self, stats) -> None:
        self.kv_stats = stats
        self.kv_stats_changed.emit()

    def apply_kv_budget(self) -> None:
        """Give the engine the snapshot budget from the settings (takes effect at once)."""
        if self.model is not None:
            self.host.set_kv_budget(self.settings.kv_snapshot_budget())

    def model_label(self) -> str:
        return self.model.label if self.model else ""

    def is_demo_loaded(self) -> bool:
        return self.model is not None and lib.is_demo_model(self.model.path)

    def model_note(self) -> str:
        if self.model is None:
            return "" if self.loading else "No model loaded. " + HOW_TO_GET_A_MODEL
        if self.is_demo_loaded():
            return f"<b>Tiny demo model.</b> {lib.demo_note()}<br>{HOW_TO_GET_A_MODEL}"
        # The banner is rich text (the demo's note is bold): the model's own note quotes files and errors.
        return html.escape(self.model.info.get("note") or "").replace("\n", "<br>")

    def capabilities(self):
        return self.model.capabilities if self.model else None

    def capability(self, name: str, default=False):
        caps = self.capabilities()
        return getattr(caps, name, default) if caps is not None else default

    def context_size(self) -> int | None:
        if self.model is None:
            return None
        return self.model.n_ctx or self.settings.n_ctx

    # ------------------------------------------------------------------ generation
    def generate(self, messages, params: dict, mix: list[ActiveAdapter] | None = None, tag=None,
                 fit_context: bool = False) -> int:
        """Queue a generation with `mix` (default: the mixer's current mix). Adapters known not to fit
        the loaded model are left out; right after a model change it waits until the mix is checked.
        `fit_context`: a chat, whose oldest turns are left out once it outgrows the context."""
        if not self._mix_checked:
            request_id = self.host.reserve_id()
            self._held.append((request_id, list(messages), dict(params), None if mix is None else list(mix), tag,
                               fit_context))
            return request_id
        return self.host.generate(messages, params, self._fitting(mix), tag, fit_context=fit_context)

    def prewarm(self, messages, mix: list[ActiveAdapter] | None = None, min_reuse: float = 0.0) -> int:
        """Queue reading `messages` ahead under `mix` (default: the mixer's current mix)."""
        return self.host.prewarm(messages, self._fitting(mix), min_reuse)

    def cancel_generation(self) -> None:
        """Stop the running answer and drop the queued ones (held ones end as cancelled at once)."""
        self.host.cancel()
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for request_id, messages, params, mix, tag, fit_context in held:
            self.host.generate(messages, params, self._fitting(mix), tag, request_id=request_id,
                               fit_context=fit_context)

    def _fitting(self, mix: list[ActiveAdapter] | None) -> list[ActiveAdapter]:
        if mix is None:
            return self.engine_mix()
        return [a for a in mix if self.unfit_reason_for_path(a.path) is None]

    def unfit_reason_for_path(self, path: str) -> str | None:
        """Why the library adapter at `path` does not fit the loaded model (None: it fits, or not known)."""
        for e in self.library_model.entries():
            if str(e.path) == str(path):
                verdict = self.compat.get(e.id)
                return verdict.reason if verdict is not None and not verdict.usable else None
        return None

    def engine_mix(self) -> list[ActiveAdapter]:
        return self.mix_model.engine_mix()

    def describe_error(self, exc: BaseException) -> str:
        """An error's text for the user, each library adapter named by its name, never by its path."""
        from .errors import error_text, with_names
        names = {str(e.path): e.name for e in self.library_model.entries()}
        names.update({e.path: e.name for e in self.mix_model.entries() if e.path})
        return with_names(error_text(exc)[0], names)

    def mix_summary(self, mix_entries: list[MixEntry] | None = None) -> str:
        entries = self.mix_model.entries() if mix_entries is None else mix_entries
        on = [f"{e.name} {e.strength:+.2f}" for e in entries
              if e.enabled and self.mix_model.unfit_reason(e.adapter_id) is None]
        return ", ".join(on) if on else "no adapters"

    # ------------------------------------------------------------------ mix
    def add_to_mix(self, adapter_id: str, strength: float = 1.0, enabled: bool = True) -> bool:
        entry = self.library_model.entry_by_id(adapter_id)
        if entry is None:
            return False
        verdict = self.compat.get(adapter_id)
        if verdict is not None and not verdict.usable:
            return False
        from adapters_backend.mix_presets import MixEntry  # after start-up
        self.mix_model.add(MixEntry(adapter_id, entry.name, str(entry.path), strength, enabled))
        self._save_mix()
        return True

    def _save_mix(self) -> None:
        import json
        self.settings.set("mix/current", json.dumps([e.to_json() for e in self.mix_model.entries()]))

    def _restore_mix(self) -> None:
        import json

        from adapters_backend.mix_presets import entries_from_json
        try:
            saved = json.loads(self.settings.get("mix/current", "[]") or "[]")
        except ValueError:
            saved = []
        self.mix_model.replace_all(self._in_library(entries_from_json(saved)))

    def _in_library(self, entries: list[MixEntry], missing: list[str] | None = None) -> list[MixEntry]:
        """The entries whose adapter is still in the library, each with the library's current file;
        the names of the others go to `missing`."""
        kept = []
        for e in entries:
            lib_entry = self.library_model.entry_by_id(e.adapter_id)
            if lib_entry is None:
                if missing is not None:
                    missing.append(e.name)
                continue
            e.path = str(lib_entry.path)
            kept.append(e)
        return kept

    def mix_changed_by_user(self) -> None:
        self._save_mix()

    def mix_choices(self) -> list[tuple[str, str]]:
        """(label, key) of the mixes compare/sweep can use: current, base, each preset."""
        out = [("Current mix", "current"), ("Base model (no adapters)", "base")]
        out += [(f"Preset: {n}", f"preset:{n}") for n in self.presets.names()]
        return out

    def resolve_mix(self, key: str) -> tuple[list[ActiveAdapter], str]:
        """(engine mix, summary) for a mix_choices key."""
        if key == "base":
            return [], "base model"
        if key.startswith("preset:"):
            entries = self._in_library(self.presets.get(key.split(":", 1)[1]) or [])
            return [e.active() for e in entries if self.mix_model.unfit_reason(e.adapter_id) is None
                    and e.enabled], self.mix_summary(entries)
        return self.engine_mix(), self.mix_summary()

    def left_out(self, key: str) -> list[str]:
        """Names of the adapters a mix_choices key has switched on that do not fit the loaded model."""
        if key == "base":
            return []
        entries = (self._in_library(self.presets.get(key.split(":", 1)[1]) or []) if key.startswith("preset:")
                   else self.mix_model.entries())
        return [e.name for e in entries if e.enabled and self.mix_model.unfit_reason(e.adapter_id) is not None]

    def model_layers(self) -> int | None:
        return self.model.n_layers if self.model else None

    def _on_conversation_file_problem(self, text: str) -> None:
        self.errors.report(BackendError(text), "Conversations")

    # -- presets --
    def save_preset(self, name: str) -> bool:
        """Save the mix as preset `name`; False (reported) when the presets file cannot be written."""
        try:
            self.presets.save(name, self.mix_model.entries())
        except OSError as exc:
            self.errors.report(BackendError(f"The preset “{name}” could not be saved: {exc}"), "Presets")
            return False
        self.presets_changed.emit()
        return True

    def apply_preset(self, name: str) -> list[str]:
        """Replace the mix by a preset; returns names of adapters no longer in the library."""
        missing: list[str] = []
        self.mix_model.replace_all(self._in_library(self.presets.get(name) or [], missing))
        self._save_mix()
        return missing

    def delete_preset(self, name: str) -> None:
        try:
            self.presets.delete(name)
        except OSError as exc:
            self.errors.report(BackendError(f"The preset “{name}” could not be deleted: {exc}"), "Presets")
            return
        self.presets_changed.emit()

    # ------------------------------------------------------------------ library
    def refresh_library(self) -> None:
        self._library_seen = lib.index_identity()
        job = self.jobs.start(lib.list_entries)
        seq = self._next_library_seq()
        job.signals.result.connect(lambda entries: self._on_library_listed(entries, seq))
        job.signals.error.connect(lambda exc: self.errors.report(exc, "Reading the adapter library"))

    def library_changed_elsewhere(self) -> bool:
        """Re-read the library if it changed since it was last read (an adapter installed or removed
        from a terminal while the app was open); the window asks when it becomes active again."""
        if self._library_seen is UNREAD or lib.index_identity() == self._library_seen:
            return False
        self.refresh_library()
        return True

    def _on_library_listed(self, entries, seq: int = 0) -> None:
        if not self._fresh_listing(seq):
            return
        self.library_model.set_entries(entries)
        names = {e.id: e.name for e in entries}
        for e in self.mix_model.entries():
            if e.adapter_id not in names:
                self.mix_model.remove_adapter(e.adapter_id)
            elif e.name != names[e.adapter_id]:          # renamed (from a terminal, say)
                self.mix_model.rename(e.adapter_id, names[e.adapter_id])
        self.library_changed.emit()
        self.refresh_compat()

    def install(self, source: str, name: str | None = None):
        """Install a file/folder/zip into the library (job); returns the job handle."""
        model = self.model
        job = self.jobs.start(lib.install_and_check, source, name, model.path if model else None,
                              model.engine if model else None)
        job.signals.progress.connect(lambda d, t, m: self.install_progressed.emit(source, d, t, m))
        job.signals.result.connect(lambda result: self._on_installed(source, result))
        job.signals.error.connect(lambda exc: self.install_finished.emit(source, None, exc))
        return job

    def _on_installed(self, source: str, result) -> None:
        entry, verdict = result
        self.note_installed(entry, verdict)
        self.install_finished.emit(source, entry, None)

    def note_installed(self, entry: LibraryEntry, verdict: Verdict | None) -> None:
        """A new adapter is in the library: show it at once with its verdict for the loaded model, and
        say (adapter_installed) whether it fits."""
        if verdict is not None and self.model is not None:
            self.compat = {**self.compat, entry.id: verdict}
            self._apply_unfit()
            self.compat_changed.emit()
        self.add_installed(entry)
        self.adapter_installed.emit(entry, verdict if self.model is not None else None)

    def add_installed(self, entry: LibraryEntry | None) -> None:
        """Show a just-installed adapter in the library at once, then re-read the library (job).
        The re-read is numbered after any listing already running, so an older listing that finishes
        later (without the new entry) is not applied over it."""
        if entry:
            entries = [e for e in self.library_model.entries() if e.id != entry.id]
            self.library_model.set_entries(entries + [entry])
            self._library_applied = max(getattr(self, "_library_applied", 0), self._next_library_seq())
            self.library_changed.emit()
        self.refresh_library()

    def remove_adapter(self, adapter_id: str):
        self.mix_model.remove_adapter(adapter_id)
        self._save_mix()
        job = self.jobs.start(lib.remove, adapter_id)
        job.signals.result.connect(lambda _r: self.refresh_library())
        job.signals.error.connect(lambda exc: self.errors.report(exc, "Removing an adapter"))
        return job

    def rename_adapter(self, adapter_id: str, new_name: str):
        job = self.jobs.start(lib.rename, adapter_id, new_name)
        job.signals.result.connect(lambda _r: (self.mix_model.rename(adapter_id, new_name), self.refresh_library()))
        job.signals.error.connect(lambda exc: self.errors.report(exc, "Renaming an adapter"))
        return job

    def set_notes(self, adapter_id: str, notes: str):
        job = self.jobs.start(lib.set_notes, adapter_id, notes)
        job.signals.result.connect(lambda _r: self.refresh_library())
        job.signals.error.connect(lambda exc: self.errors.report(exc, "Saving notes"))
        return job

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        self._save_mix()
        self.settings.set_model_on_trial("")
        self._held.clear()
        self.jobs.cancel_all()
        self.host.shutdown()
        self.jobs.wait(5000)
        self.settings.sync()

