"""OpenAI-style JSON errors: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status.

Messages often name files (a broken adapter, a failed load). A client on this machine sees them
whole; a client on another machine (``--allow-remote``) gets them with every local path replaced,
and the full message goes to the server's log instead.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

# HTTP status -> OpenAI's error "type"
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 503: "server_error", 500: "server_error"}

# An absolute path: /x/y, ~/x, C:\x or C:/x, \\server\share. Not preceded by a word character, so
# "MB/s" and "and/or" are not paths.
_PATH = re.compile(r"""(?<![\w.:/\\~])(?:[A-Za-z]:[\\/]|\\\\|~[\\/]|/)[^\s'"`<>|,;()\[\]{}]*""")
HIDDEN_PATH = "<local path>"


def is_local_client(request: Request) -> bool:
    client = request.client
    if client is None or not client.host:              # a Unix socket or an in-process test client
        return True
    try:
        return ipaddress.ip_address(client.host.split("%")[0]).is_loopback
    except ValueError:
        return client.host == "testclient"


def _is_local_path(text: str) -> bool:
    if not text.startswith("/"):                        # drive letters, UNC paths and ~ are always local
        return True
    top = text.lstrip("/").split("/", 1)[0]
    # "/v1/models" is a URL path; "/home/…", "/tmp/…" name this machine's folders.
    return bool(top) and os.path.isdir("/" + top)


def hide_paths(message: str) -> str:
    """`message` with every local file path replaced by '<local path>'."""
    return _PATH.sub(lambda m: HIDDEN_PATH if _is_local_path(m.group(0)) else m.group(0), message)


def for_client(message: str, request: Request | None) -> str:
    """What a client may read: the message itself for this machine, paths hidden for others
    (the full message is logged)."""
    if request is None or is_local_client(request):
        return message
    public = hide_paths(message)
    if public != message:
        log.warning("to %s: %s", request.client.host if request.client else "?", message)
    return public


class ApiError(Exception):
    """A request the server refuses; the message names the problem for the client's user."""

    def __init__(self, message: str, status: int = 400, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code

    def body(self, request: Request | None = None) -> dict:
        return error_body(for_client(self.message, request), self.status, self.param, self.code)

    def response(self, request: Request | None = None) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(request), status_code=self.status, headers=headers)


def error_body(message: str, status: int = 400, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def install_handlers(app: FastAPI) -> None:
    """Every error the app returns, including unknown routes and crashes, has the OpenAI shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return exc.response(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = (f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405)
                   else str(exc.detail))
        return JSONResponse(error_body(message, exc.status_code), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.error("internal error in %s %s", request.method, request.url.path, exc_info=exc)
        message = for_client(f"internal error: {type(exc).__name__}: {exc}", request)
        return JSONResponse(error_body(message, 500), status_code=500)
