"""User preferences in QSettings (INI format): window geometry, recent models, engine and sampling defaults.

`LORADECK_SETTINGS_DIR` (tests, portable installs) moves the INI file; otherwise Qt's per-user
location is used.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings

ORG = "LoRA Deck"
APP = "loradeck"
MAX_RECENT = 10

DEFAULT_SAMPLING = {"max_tokens": 256, "temperature": 0.7, "top_p": 0.95, "top_k": 40,
                    "repeat_penalty": 1.1, "seed": -1}   # -1: a new seed for each answer


def open_settings() -> QSettings:
    folder = os.environ.get("LORADECK_SETTINGS_DIR")
    if folder:
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, folder)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)


class AppSettings:
    """Typed access to the few settings LoRA Deck keeps."""

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings or open_settings()

    # -- generic --
    def get(self, key: str, default=None, type_=None):
        value = self.q.value(key, default)
        if value is None:
            return default
        if type_ is bool and isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        try:
            return type_(value) if type_ else value
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value) -> None:
        self.q.setValue(key, value)

    def sync(self) -> None:
        self.q.sync()

    # -- engine --
    @property
    def n_threads(self) -> int:
        return self.get("engine/n_threads", 0, int)   # 0 = let the engine decide

    @property
    def n_gpu_layers(self) -> int:
        return self.get("engine/n_gpu_layers", -1, int)      # -1: automatic (all that fit)

    @property
    def n_ctx(self) -> int:
        return self.get("engine/n_ctx", 2048, int)

    @property
    def kv_snapshot_mib(self) -> int:
        """Memory for KV snapshots of recent mixes, in MiB: -1 automatic (sized from the model), 0 none."""
        return self.get("engine/kv_snapshot_mib", -1, int)

    def kv_snapshot_budget(self) -> int | None:
        """The engine's `kv_snapshot_budget`: bytes, or None for automatic."""
        mib = self.kv_snapshot_mib
        return None if mib < 0 else mib * 2**20

    @property
    def prewarm(self) -> bool:
        """Read the conversation under a new mix once it settles, before the next Send."""
        return self.get("engine/prewarm", True, bool)

    def engine_options(self) -> dict:
        opts = {"n_ctx": self.n_ctx, "n_gpu_layers": self.n_gpu_layers,
                "kv_snapshot_budget": self.kv_snapshot_budget()}
        if self.n_threads > 0:
            opts["n_threads"] = self.n_threads
        return opts

    # -- sampling defaults --
    def default_sampling(self) -> dict:
        out = {}
        for k, v in DEFAULT_SAMPLING.items():
            out[k] = self.get(f"sampling/{k}", v, type(v))
        return out

    def set_default_sampling(self, params: dict) -> None:
        for k in DEFAULT_SAMPLING:
            if k in params:
                self.set(f"sampling/{k}", params[k])

    # -- appearance --
    @property
    def theme(self) -> str:
        """"system" (follow the system's light or dark scheme), "light" or "dark"."""
        return self.get("appearance/theme", "system") or "system"

    @property
    def format_answers(self) -> bool:
        """Lay out the Markdown of answers (headings, lists, code) rather than show its marks."""
        return self.get("appearance/format_answers", True, bool)

    # -- the local API server --
    @property
    def server_origins(self) -> list[str]:
        """Web pages allowed to use the built-in API server (origins like http://localhost:3000); none by default."""
        raw = self.get("server/allow_origins", "") or ""
        items = raw if isinstance(raw, list) else str(raw).replace(",", " ").split()
        return [str(o).strip() for o in items if str(o).strip()]

    def set_server_origins(self, origins: list[str]) -> None:
        self.set("server/allow_origins", " ".join(origins))

    # -- models --
    def recent_models(self) -> list[dict]:
        items = self.get("models/recent", []) or []
        if isinstance(items, str):
            items = [items]
        out = []
        for it in items:
            path, _, kind = str(it).partition("\t")
            out.append({"path": path, "engine": kind or "llama.cpp"})
        return out

    def add_recent_model(self, path: str, engine: str) -> None:
        entries = [f"{path}\t{engine}"] + [f"{r['path']}\t{r['engine']}" for r in self.recent_models()
                                           if r["path"] != path]
        self.set("models/recent", entries[:MAX_RECENT])

    @property
    def last_model(self) -> dict | None:
        path = self.get("models/last_path", "")
        if not path:
            return None
        return {"path": path, "engine": self.get("models/last_engine", "llama.cpp")}

    def set_last_model(self, path: str, engine: str) -> None:
        self.set("models/last_path", path)
        self.set("models/last_engine", engine)

    @property
    def model_on_trial(self) -> str:
        """The model that was loading, or loaded and had not yet answered, when the app last stopped
        without closing ("" if none): see AppState.load_model."""
        return str(self.get("models/on_trial", "") or "")

    def set_model_on_trial(self, path: str) -> None:
        self.set("models/on_trial", path)
        self.sync()          # on disk now: it is read after a process that died
