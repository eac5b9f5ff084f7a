"""Start and stop `loradeck serve` from the desktop app.

The same server as the command line, in a background thread of this process, with its own engine:
the app's chat engine stays free, at the cost of a second copy of the model in memory. Only llama.cpp
GGUF models can be served; with a PyTorch model loaded, the demo model is served instead (and the
caller is told). Like `loradeck serve`, it answers only requests addressed to 127.0.0.1/localhost,
and web pages only from the origins the user allowed in Settings (none by default). Blocking calls:
run `start` and `stop` in a JobRunner job.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .workers.engine_host import LoadedModel

DEFAULT_PORT = 8000
DEFAULT_N_CTX = 2048          # the app's own default (Settings → Context length)
SHARED_OPTIONS = ("n_ctx", "n_threads", "n_gpu_layers")   # Settings the server's engine takes from the app's


class ServeAccess:
    def __init__(self):
        self._server = None
        self.url = ""
        self.model_path: Path | None = None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    def start(self, model: LoadedModel | None, port: int = DEFAULT_PORT, ctx=None, allow_origins=(),
              engine_options: dict | None = None) -> dict:
        """Serve `model` (the app's loaded model, or None) on 127.0.0.1; returns {"url", "model", "note"}.
        Port `port`, or any free one when it is taken. `allow_origins`: web pages (e.g.
        "http://localhost:3000") allowed to use it. `engine_options`: Settings' context length, threads
        and GPU layers, so the API uses what the app does (default context: the loaded model's)."""
        from adapters_backend.demo import demo_model_path  # not needed to paint the window
        from adapters_backend.errors import BackendError
        from adapters_backend.serve import create_app
        from adapters_backend.serve.guard import normalize_origin
        from adapters_backend.serve.runner import BackgroundServer

        self.stop()
        note = ""
        path = Path(model.path) if model is not None else None
        if path is None or model.engine != "llama.cpp" or path.suffix.lower() != ".gguf":
            if path is not None:
                note = "The loaded model is not a llama.cpp GGUF model, so the demo model is served."
            path = demo_model_path()
        origins = [normalize_origin(o) for o in allow_origins]    # a malformed one fails before loading
        options = {k: v for k, v in (engine_options or {}).items() if k in SHARED_OPTIONS}
        n_ctx = options.pop("n_ctx", None) or (model.n_ctx if model is not None else None) or DEFAULT_N_CTX

        def app():
            return create_app(path, allow_origins=origins, n_ctx=int(n_ctx), engine_options=options)
        server = BackgroundServer(app())
        try:
            url = server.start("127.0.0.1", port)
        except BackendError as exc:
            if "cannot listen" not in str(exc):
                raise
            server = BackgroundServer(app())
            url = server.start("127.0.0.1", 0)              # the port is taken: any free one
            note = (note + f" Port {port} was taken; using {url.rsplit(':', 1)[1]}.").strip()
        self._server, self.url, self.model_path = server, url, path
        return {"url": url, "model": path.stem, "note": note}

    def stop(self, ctx=None) -> None:
        if self._server is not None:
            self._server.stop()
        self._server, self.url = None, ""
