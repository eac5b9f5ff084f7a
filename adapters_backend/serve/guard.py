"""Keeping web pages out: the checks every request passes before it reaches a route.

A browser lets any page the user visits send requests to 127.0.0.1. Three rules stop it from driving
the server:

* **Host.** A DNS-rebinding page reaches us under its own name (``Host: evil.example``); only the
  bound address and the localhost names are answered, unless the server was started for other
  machines (``--allow-remote``).
* **Origin.** Browsers name the page that sent a request in ``Origin``; a foreign one is refused
  unless the user allowed it (``--allow-origin``). CORS headers go only to allowed origins, so by
  default no page can read an answer either.
* **JSON only.** A cross-site ``text/plain`` or form POST needs no CORS preflight; requiring
  ``Content-Type: application/json`` on POST forces one (checked in the routes, see app.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from ..errors import BackendError
from .errors import error_body

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def normalize_origin(value: str) -> str:
    """'HTTP://Example.org:443/' -> 'http://example.org:443'; '*' and 'null' stay as they are.
    Raises BackendError for anything that is not scheme://host[:port]."""
    value = value.strip()
    if value in ("*", "null"):
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.scheme or not parts.hostname or port == -1 or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username is not None:
        raise BackendError(f"--allow-origin {value!r}: expected an origin like http://localhost:3000 "
                           "(scheme, host and optional port, no path), or '*' for any page")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host.lower()}" + (f":{port}" if port is not None else "")


def host_name(host_header: str) -> str:
    """The name part of a Host header: 'localhost:8000' -> 'localhost', '[::1]:8000' -> '::1'."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class RequestGuard:
    """ASGI middleware: refuses foreign Host names and foreign Origins (403) before any route runs."""

    def __init__(self, app, *, bound_host: str = "127.0.0.1", allow_remote: bool = False,
                 allow_origins: Iterable[str] = ()):
        self.app = app
        self.check_host = not allow_remote
        self.hosts = LOCAL_HOSTS | {host_name(bound_host)}
        self.origins = {normalize_origin(o) for o in allow_origins}

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        if "*" in self.origins:
            return True
        try:
            origin = normalize_origin(origin)
        except BackendError:
            return False
        # The server's own origin (a page it served itself; it serves none today) is never foreign.
        return origin in self.origins or origin == f"http://{host_header.strip().lower()}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.check_host and host and host_name(host) not in self.hosts:
            return await self._refuse(scope, receive, send, "host_not_allowed",
                                      f"this server answers only requests addressed to 127.0.0.1 or localhost, "
                                      f"not '{host[:100]}' (protection against DNS rebinding); start it with "
                                      "--allow-remote to accept other names")
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return await self._refuse(scope, receive, send, "origin_not_allowed",
                                      f"requests from web pages at '{origin[:100]}' are not allowed; start the "
                                      "server with --allow-origin ORIGIN to let that page use it")
        return await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, receive, send, code: str, message: str):
        # No CORS headers: the page that sent it cannot even read why.
        await JSONResponse(error_body(message, 403, code=code), status_code=403)(scope, receive, send)
