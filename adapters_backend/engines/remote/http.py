"""HTTP and server-sent-event plumbing shared by the remote engines.

httpx2 is the maintained successor of httpx that huggingface_hub and openai already depend on, so a
remote engine adds no new dependency. Every failure becomes an `EngineError` whose text says which
server, which request and what to do.

Streams are read on a helper thread and handed over through a queue: the engine's thread can then
notice `JobContext.cancel()` within a few hundredths of a second even while the server is still
reading a long prompt, and cancels by shutting the connection down (the server stops on its next
write).
"""
from __future__ import annotations

import json
import logging
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx

from ...errors import EngineError
from ...jobs import JobContext

log = logging.getLogger(__name__)

_POLL = 0.05          # how often a waiting stream looks at the cancel flag (s)
CANCELLED = object()  # yielded by `sse_events` once the job is cancelled


def normalize_url(url: str) -> str:
    """`host:8080`, `http://host:8080/`, `http://host:8080/v1` → `http://host:8080`."""
    text = str(url).strip()
    if not text:
        raise EngineError("no server address given; use e.g. http://127.0.0.1:8080")
    if "://" not in text:
        text = "http://" + text
    text = text.rstrip("/")
    if text.endswith("/v1"):
        text = text[:-3]
    return text


def is_url(text) -> bool:
    return isinstance(text, str) and text.strip().lower().startswith(("http://", "https://"))


def error_text(resp: httpx.Response) -> str:
    """The message a server put in an error body: OpenAI (`{"error": {"message"}}`), vLLM
    (`{"message"}`), LoRAX/TGI (`{"error": "..."}`) or plain text."""
    try:
        body = resp.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    return _message(body) or (resp.text or "").strip()[:500] or resp.reason_phrase or f"HTTP {resp.status_code}"


def _message(body: Any) -> str | None:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        if isinstance(err, str) and err:
            return err
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    return None


class RemoteClient:
    """One server: base URL, optional API key, and the requests the engines make."""

    def __init__(self, url: str, *, kind: str, api_key: str | None = None, timeout: float = 30.0,
                 stream_timeout: float | None = 600.0):
        self.url = normalize_url(url)
        self.kind = kind                       # "llama-server", "vLLM", "LoRAX": for messages
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # trust_env=False: a desktop proxy setting must not capture requests to a LAN/loopback server.
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)
        self._stream_timeout = httpx.Timeout(timeout, read=stream_timeout)

    def close(self) -> None:
        self._http.close()

    def _fail(self, path: str, exc: Exception) -> EngineError:
        if isinstance(exc, httpx.ConnectError):
            return EngineError(f"cannot reach the {self.kind} server at {self.url} ({exc}); is it running, "
                               "and is the address right?")
        if isinstance(exc, httpx.TimeoutException):
            return EngineError(f"the {self.kind} server at {self.url} did not answer {path} in time ({exc})")
        return EngineError(f"request {path} to the {self.kind} server at {self.url} failed: {exc}")

    def request(self, method: str, path: str, body: Any = None, *, ok_404: bool = False) -> httpx.Response:
        """Send one request; any status >= 400 (except 404 when `ok_404`) raises EngineError."""
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self._fail(path, exc) from exc
        if resp.status_code >= 400 and not (ok_404 and resp.status_code == 404):
            raise EngineError(f"the {self.kind} server at {self.url} refused {method} {path} "
                              f"(HTTP {resp.status_code}): {error_text(resp)}")
        return resp

    def get_json(self, path: str, *, ok_404: bool = False) -> Any:
        return self.json("GET", path, ok_404=ok_404)

    def json(self, method: str, path: str, body: Any = None, *, ok_404: bool = False) -> Any:
        """The JSON the server answers (None for a 404 with `ok_404`); no JSON is an EngineError."""
        resp = self.request(method, path, body, ok_404=ok_404)
        if resp.status_code == 404:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise EngineError(f"the {self.kind} server at {self.url} sent no JSON for {path}: "
                              f"{resp.text[:200]!r}") from exc

    def sse_events(self, path: str, body: dict, ctx: JobContext) -> Iterator[Any]:
        """POST `body` and yield each server-sent event's JSON `data` (a dict); yields `CANCELLED` once
        and stops when `ctx` is cancelled. `[DONE]` ends the stream; an `error` event raises."""
        q: queue.Queue = queue.Queue()
        stop = threading.Event()
        holder: dict = {}

        def reader() -> None:
            try:
                with self._http.stream("POST", path, json=body, timeout=self._stream_timeout) as resp:
                    holder["resp"] = resp
                    if resp.status_code >= 400:
                        resp.read()
                        q.put(("status", resp))
                        return
                    for line in resp.iter_lines():
                        if stop.is_set():
                            return
                        q.put(("line", line))
                q.put(("end", None))
            except Exception as exc:  # handed to the engine thread, raised there
                q.put(("error", exc))

        worker = threading.Thread(target=reader, name=f"{self.kind} stream", daemon=True)
        worker.start()
        event_name, data_lines = "", []
        try:
            while True:
                try:
                    kind, value = q.get(timeout=_POLL)
                except queue.Empty:
                    if ctx.cancelled():
                        yield CANCELLED
                        return
                    continue
                if ctx.cancelled():
                    yield CANCELLED
                    return
                if kind == "status":
                    raise EngineError(f"the {self.kind} server at {self.url} refused the request "
                                      f"(HTTP {value.status_code}): {error_text(value)}")
                if kind == "error":
                    if stop.is_set():
                        return
                    raise self._fail(path, value) from value
                if kind == "end":
                    if data_lines:                         # a last event without its blank line
                        yield from (item for item in self._decode(event_name, data_lines) if item is not None)
                    return
                line = value.rstrip("\r")
                if not line:                               # blank line: the event is complete
                    if data_lines:
                        for item in self._decode(event_name, data_lines):
                            if item is None:
                                return
                            yield item
                    event_name, data_lines = "", []
                elif line.startswith(":"):                 # comment / keep-alive ping
                    continue
                else:
                    field, _, val = line.partition(":")
                    val = val[1:] if val.startswith(" ") else val
                    if field == "event":
                        event_name = val
                    elif field in ("data", "error"):      # llama-server writes `error: {...}` lines
                        if field == "error":
                            event_name = "error"
                        data_lines.append(val)
        finally:
            stop.set()
            _shutdown(holder.get("resp"))

    def _decode(self, event_name: str, data_lines: list[str]) -> Iterator[Any]:
        data = "\n".join(data_lines)
        if data.strip() == "[DONE]":
            yield None
            return
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise EngineError(f"the {self.kind} server at {self.url} sent a stream event that is not JSON: "
                              f"{data[:200]!r}") from exc
        message = _message(obj) if isinstance(obj, dict) and "error" in obj else None
        if event_name == "error" or message:
            raise EngineError(f"the {self.kind} server at {self.url} stopped with an error: "
                              f"{message or _message(obj) or data[:300]}")
        yield obj


def _shutdown(resp) -> None:
    """Cut the connection under a stream another thread may be reading (wakes its blocked read)."""
    if resp is None:
        return
    try:
        sock = resp.extensions["network_stream"].get_extra_info("socket")
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except (KeyError, AttributeError, OSError):
        pass


__all__ = ["CANCELLED", "RemoteClient", "error_text", "is_url", "normalize_url"]
