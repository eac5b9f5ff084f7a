"""HTTP and server-sent-event plumbing shared by the remote engines.

httpx2 is the maintained successor of httpx that huggingface_hub and openai already depend on, so a
remote engine adds no new dependency. Every failure becomes an `EngineError` whose text says which
server, which request and what to do.

Streams are read on a helper thread and handed over through a queue: the engine's thread can then
notice `JobContext.cancel()` within a few hundredths of a second even while the server is still
reading a long prompt, and cancels by shutting the connection down (the server stops on its next
write).

The user types the server's address, so whatever answers is read with bounds: an answer body of at
most `MAX_ANSWER_BYTES` (after decompression) arriving within `MAX_ANSWER_SECONDS`, a streamed event
or line of at most `MAX_EVENT_CHARS`. Without them, a server that never ends a body or a line (a wrong
port, a hostile host, a gzip bomb) filled the app's memory or held it for good.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx

from ...errors import EngineError
from ...jobs import JobContext

log = logging.getLogger(__name__)

_POLL = 0.05          # how often a waiting stream looks at the cancel flag (s)
CANCELLED = object()  # yielded by `sse_events` once the job is cancelled
# Most answers are kilobytes (model lists, a token event); the largest are llama-server's rendered
# prompt and its token list for the conversation, about 2.5 bytes per character of a pasted text. This
# lets a 20 MB paste reach the context check that refuses it; it is far below a desktop's memory.
MAX_ANSWER_BYTES = 64 << 20
MAX_EVENT_CHARS = 8 << 20
MAX_ANSWER_SECONDS = 60.0       # from an answer's headers to its last byte (a stream has no such bound)
QUEUED_LINES = 64               # stream lines read ahead of the engine
_NEWLINE = re.compile(r"\r\n|\r|\n")    # SSE lines end with any of the three


class AnswerOutOfBounds(Exception):
    """A server's answer passed one of the bounds above."""


def read_bounded(resp: httpx.Response) -> httpx.Response:
    """The answer of a streamed request with its body read, if the body is at most MAX_ANSWER_BYTES as
    decoded (a compressed body is counted as it expands) and arrives within MAX_ANSWER_SECONDS."""
    limit, seconds = MAX_ANSWER_BYTES, MAX_ANSWER_SECONDS
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerOutOfBounds(f"its answer declares {int(declared):,} bytes")
    chunks, size = [], 0
    deadline = time.monotonic() + seconds
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise AnswerOutOfBounds(f"its answer passed {limit:,} bytes")
        if time.monotonic() > deadline:
            raise AnswerOutOfBounds(f"its answer took more than {seconds:g} s to arrive")
        chunks.append(chunk)
    headers = [(k, v) for k, v in resp.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(resp.status_code, headers=headers, content=b"".join(chunks), request=resp.request)


def bounded_lines(texts: Iterator[str]) -> Iterator[str]:
    """The lines of a text stream (ended by CRLF, LF or CR, as server-sent events allow), none longer
    than MAX_EVENT_CHARS characters."""
    limit = MAX_EVENT_CHARS
    pending: list[str] = []
    size, after_cr = 0, False
    for text in texts:
        if not text:
            continue
        if after_cr and text.startswith("\n"):
            text = text[1:]                     # the LF of a CRLF split between two chunks
        after_cr = text.endswith("\r")
        if not text:
            continue
        parts = _NEWLINE.split(text)
        if len(parts) > 1:
            yield "".join(pending) + parts[0]
            yield from parts[1:-1]
            pending, size = [], 0
        pending.append(parts[-1])
        size += len(parts[-1])
        if size > limit:
            raise AnswerOutOfBounds(f"it sent a line longer than {limit:,} characters")
    if size:
        yield "".join(pending)


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


def server_name(kind: str) -> str:
    """How messages name a server of `kind`: "the vLLM server", but "the llama-server", not "the
    llama-server server"."""
    return kind if kind.endswith("server") else f"{kind} server"


class RemoteClient:
    """One server: base URL, optional API key, and the requests the engines make."""

    def __init__(self, url: str, *, kind: str, api_key: str | None = None, timeout: float = 30.0,
                 stream_timeout: float | None = 600.0):
        self.url = normalize_url(url)
        self.kind = kind                       # "llama-server", "vLLM", "LoRAX"
        self.server = server_name(kind)        # for messages
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # trust_env=False: a desktop proxy setting must not capture requests to a LAN/loopback server.
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)
        self._stream_timeout = httpx.Timeout(timeout, read=stream_timeout)

    def close(self) -> None:
        self._http.close()

    def _fail(self, path: str, exc: Exception) -> EngineError:
        if isinstance(exc, httpx.ConnectError):
            return EngineError(f"cannot reach the {self.server} at {self.url} ({exc}); is it running, "
                               "and is the address right?")
        if isinstance(exc, httpx.TimeoutException):
            return EngineError(f"the {self.server} at {self.url} did not answer {path} in time ({exc})")
        return EngineError(f"request {path} to the {self.server} at {self.url} failed: {exc}")

    def _out_of_bounds(self, path: str, exc: AnswerOutOfBounds) -> EngineError:
        return EngineError(f"the {self.server} at {self.url} sent no usable answer to {path} ({exc}); "
                           "is this address a server LoRA Deck can use?")

    def request(self, method: str, path: str, body: Any = None, *, ok_404: bool = False) -> httpx.Response:
        """Send one request; any status >= 400 (except 404 when `ok_404`) raises EngineError."""
        try:
            with self._http.stream(method, path, json=body) as streamed:
                resp = read_bounded(streamed)
        except httpx.HTTPError as exc:
            raise self._fail(path, exc) from exc
        except AnswerOutOfBounds as exc:
            raise self._out_of_bounds(path, exc) from None
        if resp.status_code >= 400 and not (ok_404 and resp.status_code == 404):
            raise EngineError(f"the {self.server} at {self.url} refused {method} {path} "
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
            raise EngineError(f"the {self.server} at {self.url} sent no JSON for {path}: "
                              f"{resp.text[:200]!r}") from exc

    def sse_events(self, path: str, body: dict, ctx: JobContext) -> Iterator[Any]:
        """POST `body` and yield each server-sent event's JSON `data` (a dict); yields `CANCELLED` once
        and stops when `ctx` is cancelled. `[DONE]` ends the stream; an `error` event raises."""
        # Bounded: a server sending faster than the engine reads waits for it, instead of queueing.
        q: queue.Queue = queue.Queue(maxsize=QUEUED_LINES)
        stop = threading.Event()
        holder: dict = {}

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=_POLL)
                    return True
                except queue.Full:
                    continue
            return False

        def reader() -> None:
            try:
                with self._http.stream("POST", path, json=body, timeout=self._stream_timeout) as resp:
                    holder["resp"] = resp
                    if resp.status_code >= 400:
                        put(("status", read_bounded(resp)))
                        return
                    for line in bounded_lines(resp.iter_text()):
                        if not put(("line", line)):
                            return
                put(("end", None))
            except AnswerOutOfBounds as exc:
                put(("out of bounds", exc))
            except Exception as exc:  # handed to the engine thread, raised there
                put(("error", exc))

        worker = threading.Thread(target=reader, name=f"{self.kind} stream", daemon=True)
        worker.start()
        event_name, data_lines, event_chars = "", [], 0
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
                    raise EngineError(f"the {self.server} at {self.url} refused the request "
                                      f"(HTTP {value.status_code}): {error_text(value)}")
                if kind == "out of bounds":
                    raise self._out_of_bounds(path, value)
                if kind == "error":
                    if stop.is_set():
                        return
                    raise self._fail(path, value) from value
                if kind == "end":
                    if data_lines:                         # a last event without its blank line
                        yield from (item for item in self._decode(event_name, data_lines) if item is not None)
                    return
                line = value
                if not line:                               # blank line: the event is complete
                    if data_lines:
                        for item in self._decode(event_name, data_lines):
                            if item is None:
                                return
                            yield item
                    event_name, data_lines, event_chars = "", [], 0
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
                        event_chars += len(val)
                        if event_chars > MAX_EVENT_CHARS:
                            raise self._out_of_bounds(path, AnswerOutOfBounds(
                                f"it sent an event longer than {MAX_EVENT_CHARS:,} characters"))
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
            raise EngineError(f"the {self.server} at {self.url} sent a stream event that is not JSON: "
                              f"{data[:200]!r}") from exc
        message = _message(obj) if isinstance(obj, dict) and "error" in obj else None
        if event_name == "error" or message:
            raise EngineError(f"the {self.server} at {self.url} stopped with an error: "
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


__all__ = ["CANCELLED", "MAX_ANSWER_BYTES", "MAX_ANSWER_SECONDS", "MAX_EVENT_CHARS", "AnswerOutOfBounds",
           "RemoteClient", "bounded_lines", "error_text", "is_url", "normalize_url", "read_bounded"]
