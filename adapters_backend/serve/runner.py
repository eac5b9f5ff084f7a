"""Running the app with uvicorn: in the foreground (the CLI) or in a background thread (the desktop
app, the tests). The socket is bound here first, so a taken port is a clear error and port 0 works."""
from __future__ import annotations

import ipaddress
import socket
import threading
import time

from ..errors import BackendError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False                    # a host name: assume it is reachable from elsewhere


def bind_socket(host: str, port: int) -> socket.socket:
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BackendError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                           f"{' (is another server running there? try --port)' if port else ''}") from None
    sock.listen(2048)                   # connections wait in the backlog while the model loads
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):       # listening everywhere: show an address that works locally
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app, log_level: str):
    import uvicorn
    # No access log by default: the server runs beside the app and prompts are the user's business.
    return uvicorn.Config(app, log_level=log_level, access_log=log_level in ("info", "debug"),
                          timeout_graceful_shutdown=5)


def run_forever(app, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve until Ctrl+C (uvicorn handles the signal and shuts down gracefully)."""
    import uvicorn
    try:
        uvicorn.Server(_config(app, log_level)).run(sockets=[sock])
    except KeyboardInterrupt:           # uvicorn re-raises Ctrl+C after its graceful shutdown
        pass


class BackgroundServer:
    """`BackgroundServer(app).start(host, port)` -> serving in a thread; `.url`; `.stop()`."""

    def __init__(self, app, log_level: str = "warning"):
        self.app, self.log_level = app, log_level
        self.server = None
        self.thread: threading.Thread | None = None
        self.url = ""
        self.error: BaseException | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 120.0) -> str:
        import uvicorn
        sock = bind_socket(host, port)
        self.url = base_url(sock)
        server = uvicorn.Server(_config(self.app, self.log_level))
        self.server = server

        def run():
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start()/stop()
                self.error = exc
            finally:
                sock.close()

        self.thread = threading.Thread(target=run, name="loradeck-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:          # lifespan done: the model is loaded
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                worker = getattr(self.app.state, "worker", None)
                why = self.error or getattr(worker, "load_error", None) or "timed out loading the model"
                raise BackendError(f"the server did not start: {why}")
            time.sleep(0.02)
        return self.url

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
