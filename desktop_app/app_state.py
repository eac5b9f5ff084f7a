"""AppState: the session's only state (loaded model, adapter mix, library, conversations, presets).

Widgets read it and change it through its methods; it owns the job runner and the engine host, so
every long operation starts here and reports back through its signals.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from .conversation_store import ConversationStore
from .errors import ErrorReporter
from .models.conversation_model import ConversationListModel
from .models.library_model import LibraryTableModel
from .models.mix_model import MixEntry, MixListModel
from .preset_store import PresetStore
from .settings import AppSettings
from .workers.engine_host import EngineHost, LoadRequest
from .workers.job_runner import JobRunner
from . import library_access as lib

log = logging.getLogger(__name__)

HOW_TO_GET_A_MODEL = ("To use a real model: <b>File → Open GGUF model…</b> (Ctrl+O), drop a <tt>.gguf</tt> "
                      "file on the window, or find one in the <b>Hub</b> tab.")


def _data_dir() -> Path:
    from adapters_backend.paths import data_dir  # noqa: PLC0415 - platformdirs, after start-up
    return data_dir()


def engine_for(path: str | Path) -> str:
    """Pick the engine by what the model is: a .gguf file → llama.cpp; a folder (HF model) or a Hub id
    such as "Qwen/Qwen2.5-0.5B-Instruct" → PyTorch (which says plainly if a folder is not a model)."""
    text = str(path)
    if text.lower().startswith(("http://", "https://")):
        return "llama-server"          # a serving system's address; the picker lets the user say which kind
    if text.lower().endswith(".gguf"):
        return "llama.cpp"
    p = Path(text).expanduser()
    if p.is_dir() or (not p.exists() and is_hub_id(text)):
        return "torch"
    return "llama.cpp"


def is_hub_id(text: str) -> bool:
    """"owner/name" with Hub-legal characters (and not a path that exists locally)."""
    import re  # noqa: PLC0415
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*", text.strip())) \
        and not Path(text).expanduser().exists()


class AppState(QObject):
    model_loading = Signal(str)               # label of the model being loaded
    model_load_progressed = Signal(float, float, str)
    model_changed = Signal()                  # a model was loaded (or failed/unloaded)
    library_changed = Signal()
    compat_changed = Signal()
    presets_changed = Signal()
    busy_changed = Signal(bool)               # the engine is generating or loading
    install_progressed = Signal(str, float, float, str)   # source, done, total, message
    install_finished = Signal(str, object, object)        # source, entry | None, error | None
    model_load_failed = Signal(str, str)      # label, user-facing reason
    kv_stats_changed = Signal()               # what the engine's KV snapshot store holds changed

    def __init__(self, settings: AppSettings | None = None, errors: ErrorReporter | None = None,
                 engine_factory=None, parent=None):
        super().__init__(parent)
        self.settings = settings or AppSettings()
        self.errors = errors or ErrorReporter()
        self.jobs = JobRunner(self)
        self.host = EngineHost(engine_factory)
        self.model: dict | None = None          # what EngineHost.model_loaded described
        self.loading: str | None = None
        self.busy = False
        self.compat: dict[str, dict] = {}       # adapter id -> {"ok": bool|None, "reason": str}
        self.mix_model = MixListModel(self)
        self.library_model = LibraryTableModel(self)
        # The data folder is resolved on first use (after the window is painted).
        self.conversations = ConversationListModel(ConversationStore(lambda: _data_dir() / "conversations"), self)
        self._presets: PresetStore | None = None
        self._compat_job = None
        self.host.model_loaded.connect(self._on_host_model_loaded)
        self.host.model_load_failed.connect(self._on_host_model_load_failed)
        self.host.load_progressed.connect(self.model_load_progressed)
        self.host.busy_changed.connect(self._on_host_busy_changed)
        self.kv_stats: dict | None = None       # the engine's KV snapshot store (None: none)
        self.host.kv_stats_changed.connect(self._on_host_kv_stats_changed)

    @property
    def presets(self) -> PresetStore:
        if self._presets is None:
            self._presets = PresetStore(_data_dir() / "mix_presets.json")
        return self._presets

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """After the window is painted: read conversations and library, load the last (or demo) model."""
        self.conversations.load()
        first_run = not self.settings.get("app/first_run_done", False, bool)
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
        if last and Path(last["path"]).exists():
            self.load_model(last["path"], last["engine"])
        else:
            demo = lib.demo_model()
            if demo is not None:
                self.load_model(str(demo), "llama.cpp", label="Demo model")

    # ------------------------------------------------------------------ model
    def load_model(self, path: str, engine: str | None = None, label: str = "", options: dict | None = None) -> None:
        """Load a model file/folder/Hub id, or connect to a server (`path` = its URL, `options` e.g. api_key)."""
        engine = engine or engine_for(path)
        remote = str(path).lower().startswith(("http://", "https://"))
        label = label or ("Demo model" if lib.is_demo_model(path)
                          else f"{engine} at {path}" if remote else Path(path).name)
        self.loading = label
        self.model_loading.emit(label)
        self.host.load(LoadRequest(str(path), engine, {**self.settings.engine_options(), **(options or {})}, label))

    def _on_host_model_loaded(self, info: dict) -> None:
        self.loading = None
        self.model = info
        self.kv_stats = None
        self.settings.set_last_model(info["path"], info["engine"])
        self.settings.add_recent_model(info["path"], info["engine"])
        self.model_changed.emit()
        self.refresh_compat()

    def _on_host_model_load_failed(self, exc) -> None:
        label = self.loading or "the model"
        self.loading = None
        self.model = None
        self.model_changed.emit()
        self.refresh_compat()              # verdicts of the previous model no longer apply
        from .errors import error_text  # noqa: PLC0415
        self.model_load_failed.emit(label, error_text(exc)[0])
        self.errors.report(exc, f"Loading {label}")

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
        return self.model["label"] if self.model else ""

    def is_demo_loaded(self) -> bool:
        return bool(self.model) and lib.is_demo_model(self.model["path"])

    def model_note(self) -> str:
        if self.model is None:
            return "" if self.loading else "No model loaded. " + HOW_TO_GET_A_MODEL
        if self.is_demo_loaded():
            return f"<b>Tiny demo model.</b> {lib.demo_note()}<br>{HOW_TO_GET_A_MODEL}"
        note = (self.model.get("info") or {}).get("note") if isinstance(self.model.get("info"), dict) else None
        return note or ""

    def capabilities(self):
        return self.model.get("capabilities") if self.model else None

    def capability(self, name: str, default=False):
        caps = self.capabilities()
        return getattr(caps, name, default) if caps is not None else default

    def context_size(self) -> int | None:
        info = (self.model or {}).get("info")
        if isinstance(info, dict) and info.get("n_ctx"):
            return int(info["n_ctx"])
        return self.settings.n_ctx if self.model else None

    # ------------------------------------------------------------------ generation
    def generate(self, messages, params: dict, mix: list | None = None, tag=None) -> int:
        """Queue a generation with `mix` (default: the mixer's current mix)."""
        return self.host.generate(messages, params, self._named(mix), tag)

    def prewarm(self, messages, mix: list | None = None, min_reuse: float = 0.0) -> int:
        """Queue reading `messages` ahead under `mix` (default: the mixer's current mix)."""
        return self.host.prewarm(messages, self._named(mix), min_reuse)

    def _named(self, mix: list | None) -> list:
        mix = self.engine_mix() if mix is None else mix
        # The library name goes along: a remote server matches adapters by name (its own copies).
        names = {e.path: e.name for e in self.mix_model.entries()}
        return [(*m[:3], names.get(m[0])) if len(m) == 3 else m for m in mix]

    def engine_mix(self) -> list:
        return self.mix_model.engine_mix()

    def mix_summary(self, mix_entries: list[MixEntry] | None = None) -> str:
        entries = self.mix_model.entries() if mix_entries is None else mix_entries
        on = [f"{e.name} {e.strength:+.2f}" for e in entries if e.enabled]
        return ", ".join(on) if on else "no adapters"

    # ------------------------------------------------------------------ mix
    def add_to_mix(self, adapter_id: str, strength: float = 1.0, enabled: bool = True) -> bool:
        entry = self.library_model.entry_by_id(adapter_id)
        if entry is None:
            return False
        verdict = self.compat.get(adapter_id)
        if verdict is not None and verdict.get("ok") is False:
            return False
        self.mix_model.add(MixEntry(adapter_id, lib.entry_name(entry), lib.entry_path(entry), strength, enabled))
        self._save_mix()
        return True

    def _save_mix(self) -> None:
        import json  # noqa: PLC0415
        self.settings.set("mix/current", json.dumps([e.to_json() for e in self.mix_model.entries()]))

    def _restore_mix(self) -> None:
        import json  # noqa: PLC0415
        try:
            saved = json.loads(self.settings.get("mix/current", "[]") or "[]")
        except ValueError:
            saved = []
        self.mix_model.replace_all(self._entries_from_json(saved))

    def _entries_from_json(self, saved) -> list[MixEntry]:
        """Saved mix entries still in the library, with the library's current file for each."""
        entries = []
        for d in saved:
            try:
                e = MixEntry.from_json(d)
            except (KeyError, TypeError, ValueError):
                continue
            lib_entry = self.library_model.entry_by_id(e.adapter_id)
            if lib_entry is not None:
                e.path = lib.entry_path(lib_entry)
                entries.append(e)
        return entries

    def mix_changed_by_user(self) -> None:
        self._save_mix()

    def mix_choices(self) -> list[tuple[str, str]]:
        """(label, key) of the mixes compare/sweep can use: current, base, each preset."""
        out = [("Current mix", "current"), ("Base model (no adapters)", "base")]
        out += [(f"Preset: {n}", f"preset:{n}") for n in self.presets.names()]
        return out

    def resolve_mix(self, key: str) -> tuple[list, str]:
        """(engine mix, summary) for a mix_choices key."""
        if key == "base":
            return [], "base model"
        if key.startswith("preset:"):
            entries = self._entries_from_json(self.presets.get(key.split(":", 1)[1]))
            return [e.engine_entry() for e in entries if e.enabled], self.mix_summary(entries)
        return self.engine_mix(), self.mix_summary()

    def model_layers(self) -> int | None:
        info = (self.model or {}).get("info")
        if isinstance(info, dict) and info.get("n_layers"):
            return int(info["n_layers"])
        return None

    # -- presets --
    def save_preset(self, name: str) -> None:
        self.presets.save(name, [e.to_json() for e in self.mix_model.entries()])
        self.presets_changed.emit()

    def apply_preset(self, name: str) -> list[str]:
        """Replace the mix by a preset; returns names of adapters no longer in the library."""
        entries, missing = [], []
        for d in self.presets.get(name):
            try:
                e = MixEntry.from_json(d)
            except (KeyError, TypeError, ValueError):
                continue
            lib_entry = self.library_model.entry_by_id(e.adapter_id)
            if lib_entry is None:
                missing.append(e.name)
                continue
            e.path = lib.entry_path(lib_entry)
            entries.append(e)
        self.mix_model.replace_all(entries)
        self._save_mix()
        return missing

    def delete_preset(self, name: str) -> None:
        self.presets.delete(name)
        self.presets_changed.emit()

    # ------------------------------------------------------------------ library
    def refresh_library(self) -> None:
        job = self.jobs.start(lib.list_entries)
        seq = self._next_library_seq()
        job.signals.result.connect(lambda entries: self._on_library_listed(entries, seq))
        job.signals.error.connect(lambda exc: self.errors.report(exc, "Reading the adapter library"))

    def _on_library_listed(self, entries, seq: int = 0) -> None:
        if not self._fresh_listing(seq):
            return
        self.library_model.set_entries(entries)
        ids = {lib.entry_id(e) for e in entries}
        for e in self.mix_model.entries():
            if e.adapter_id not in ids:
                self.mix_model.remove_adapter(e.adapter_id)
        self.library_changed.emit()
        self.refresh_compat()

    def install(self, source: str, name: str | None = None):
        """Install a file/folder/zip into the library (job); returns the job handle."""
        job = self.jobs.start(lib.install, source, name)
        job.signals.progress.connect(lambda d, t, m: self.install_progressed.emit(source, d, t, m))
        job.signals.result.connect(lambda entry: self._on_installed(source, entry))
        job.signals.error.connect(lambda exc: self.install_finished.emit(source, None, exc))
        return job

    def _on_installed(self, source: str, entry) -> None:
        self.add_installed(entry)
        self.install_finished.emit(source, entry, None)

    def add_installed(self, entry: dict | None) -> None:
        """Show a just-installed adapter in the library at once, then re-read the library (job).
        The re-read is numbered after any listing already running, so an older listing that finishes
        later (without the new entry) is not applied over it."""
        if entry:
            entries = [e for e in self.library_model.entries() if e["id"] != entry["id"]]
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

    # ------------------------------------------------------------------ compatibility
    def refresh_compat(self) -> None:
        """Check every library adapter against the loaded model (off the GUI thread)."""
        if self._compat_job is not None and not self._compat_job.done:
            self._compat_job.cancel()
        if self.model is None:
            # Forget the running check too: its verdicts (for the previous model) must not land later.
            self._compat_job = None
            self.compat = {}
            self.compat_changed.emit()
            return
        entries = self.library_model.entries()
        job = self.jobs.start(lib.check_all, entries, self.model["path"], self.model["engine"])
        self._compat_job = job
        job.signals.result.connect(lambda res, j=job: self._on_compat_checked(j, res))
        job.signals.error.connect(lambda exc: None if type(exc).__name__ == "JobCancelled"   # superseded
                                  else log.warning("compatibility check failed: %s", exc))

    def _on_compat_checked(self, job, result: dict) -> None:
        if job is not self._compat_job:
            return
        self.compat = result
        self.compat_changed.emit()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        self._save_mix()
        self.jobs.cancel_all()
        self.host.shutdown()
        self.jobs.wait(5000)
        self.settings.sync()
