"""One engine, one thread: requests are queued and run one after another.

An engine is single-threaded (engines/base.py), and a llama.cpp context holds one adapter mix at a
time, so the server never runs two generations at once: each job sets its own mix (the engine's hot
switch) and then generates. The engine keys its KV cache by mix: a request reuses the longest prompt
prefix that the live cache or a stored snapshot *of its own mix* holds (as vLLM keys prefix blocks by
adapter), so clients alternating mixes over one long system prompt pay only for their new tokens, and
nothing computed under one mix is ever used under another. Chunks travel back to
the request's event loop through `call_soon_threadsafe`, so no request ever blocks a thread while it
waits for its turn. Cancelling a job (client gone, stop string reached) stops it before its next
token, or skips it if it has not started.

After an answer, while no request waits, the worker reads ahead as the desktop app does for the
mix used before: the chat with its answer, under each other mix of the last 16 requests that asked an
earlier turn of this same chat. A client alternating mixes over one conversation then finds the other
mix up to date when it sends at a reading pace; clients that only share a system prompt are not read
for each other, and a client that keeps one mix costs nothing more (each read keeps a snapshot, and a
new snapshot buffer is not free). A request that arrives stops the reading at once (llama.cpp's
abort callback) and continues from what it read.

If the engine thread dies (a crash that escapes a request, or anything that ends the thread), every
request it held or had queued ends at once with EngineStopped (HTTP 503), later ones are refused at
once, and /health says so: nothing waits for a thread that will never answer.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..engines.base import ActiveAdapter, ChatMessage, SamplingParams, TokenChunk
from ..jobs import JobContext

log = logging.getLogger(__name__)

RECENT_CHATS = 16                  # earlier requests whose mix a read-ahead may bring up to date
PREVIOUS_MIX_MIN_REUSE = 0.5       # … and only when that mix's cache holds this share of the chat


@dataclass
class JobEnd:
    """The last item of a job that did not end with a finished TokenChunk."""

    error: BaseException | None = None     # None: skipped because it was cancelled while queued


class Job:
    def __init__(self, kind: str, prompt: Sequence[ChatMessage] | str, mix: Sequence[ActiveAdapter],
                 params: SamplingParams, loop: asyncio.AbstractEventLoop | None = None):
        self.kind = kind                   # "chat" | "complete"
        self.prompt, self.mix, self.params = prompt, list(mix), params
        self.ctx = JobContext()
        self._loop = loop or asyncio.get_running_loop()
        self._out: asyncio.Queue = asyncio.Queue()
        self.started = threading.Event()

    def emit(self, item) -> None:          # worker thread
        try:
            self._loop.call_soon_threadsafe(self._out.put_nowait, item)
        except RuntimeError:               # the loop is closed: nobody listens any more
            self.ctx.cancel()

    async def next(self) -> TokenChunk | JobEnd:
        return await self._out.get()

    def cancel(self) -> None:
        self.ctx.cancel()


class EngineStopped(RuntimeError):
    """The engine thread is gone; nothing can be served until the server is restarted."""


class EngineWorker:
    def __init__(self, engine_factory: Callable[[], object], model_path: str | Path, max_queue: int = 64):
        self._factory, self.model_path = engine_factory, Path(model_path)
        self.max_queue = max_queue         # beyond this, refuse (503) rather than pile up unbounded work
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_error: BaseException | None = None
        self._death: str | None = None      # why the engine thread stopped, once it has
        self._live: set[Job] = set()       # submitted and not yet ended: failed together if the thread dies
        self._live_lock = threading.Lock()
        self.info: dict = {}
        self.capabilities = None
        self.stats = {"served": 0, "cancelled": 0, "failed": 0}
        self.busy = False
        self.reading_ahead = False
        self._recent: list[tuple[list, list]] = []    # (chat with its answer, mix) of the latest chat requests
        self.closed = False

    # -- lifecycle (called from the server's thread) ----------------------------------------------
    def start(self, timeout: float | None = None) -> dict:
        """Start the thread, load the model in it, and wait; raises what loading raised."""
        self._thread = threading.Thread(target=self._run, name="loradeck-serve-engine", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"loading {self.model_path} took more than {timeout} s")
        if self._load_error is not None:
            raise self._load_error
        return self.info

    def submit(self, job: Job) -> None:
        if self.closed:
            raise RuntimeError("the server is shutting down")
        if self.failure is not None:
            raise EngineStopped(self.failure)
        if self._queue.qsize() >= self.max_queue:
            raise RuntimeError(f"the server is busy: {self._queue.qsize()} requests are waiting; retry later")
        with self._live_lock:
            self._live.add(job)
        self._queue.put(job)
        if self.failure is not None:       # the thread died while we queued: nobody will take it
            self._fail_live()

    @property
    def failure(self) -> str | None:
        """Why the engine cannot serve any more (its thread stopped), or None while it is fine."""
        if self._death is None and self._thread is not None and not self._thread.is_alive() \
                and self._ready.is_set() and self._load_error is None and not self.closed:
            self._death = "the engine thread ended unexpectedly; restart the server"
        return self._death

    @property
    def load_error(self) -> BaseException | None:
        return self._load_error

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the running job's current token, skip queued ones, free the engine."""
        if self.closed:
            return
        self.closed = True
        pending = []
        while True:                        # cancel what is still waiting, so shutdown is quick
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for job in pending:
            if job is not None:
                job.cancel()
                job.emit(JobEnd())
                with self._live_lock:
                    self._live.discard(job)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the engine thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            engine = self._factory()
            self.info = dict(engine.load(self.model_path))
            self.capabilities = engine.capabilities
        except BaseException as exc:  # reported to start()
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (job := self._queue.get()) is not None:
                self.busy = True
                answer = self._serve(engine, job)  # request errors end the request; anything else ends the thread
                chat, earlier = self._remember(job, answer) if answer is not None else (None, [])
                # Said before no longer busy: whoever waits for the server to settle must not slip in between.
                self.reading_ahead = bool(earlier) and self._queue.empty()
                self.busy = False
                with self._live_lock:
                    self._live.discard(job)
                if self.reading_ahead:
                    self._read_ahead(engine, chat, earlier)
        except BaseException as exc:  # the thread ends here; the requests must not wait for it
            self.busy = False
            log.error("the engine thread stopped", exc_info=exc)
            self._death = f"the engine stopped ({type(exc).__name__}: {exc}); restart the server"
            self._fail_live()
        finally:
            try:
                engine.close()
            except Exception as exc:  # closing a broken engine may fail too
                log.warning("closing the engine failed: %s", exc)

    def _fail_live(self) -> None:
        """End every submitted request that has not ended (the thread that would serve them is gone)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with self._live_lock:
            live, self._live = list(self._live), set()
        for job in live:
            job.emit(JobEnd(EngineStopped(self._death or "the engine stopped")))

    def _serve(self, engine, job: Job) -> str | None:
        """Run `job`; returns the answer of a chat that ended on its own (None otherwise)."""
        job.started.set()
        if job.ctx.cancelled():            # the client left while it waited
            self.stats["cancelled"] += 1
            job.emit(JobEnd())
            return None
        last, texts = None, []
        try:
            engine.set_adapters(job.mix)   # the request's own mix; the engine reuses KV of that mix only
            if job.kind == "complete" and hasattr(engine, "complete"):
                chunks = engine.complete(job.prompt, job.params, job.ctx)
            elif job.kind == "complete":   # an engine without raw completion: the prompt as one user turn
                chunks = engine.generate([ChatMessage("user", job.prompt)], job.params, job.ctx)
            else:
                chunks = engine.generate(job.prompt, job.params, job.ctx)
            for last in chunks:
                if last.finished:          # count before the client can see the end of its reply
                    self.stats["cancelled" if last.finish_reason == "cancelled" else "served"] += 1
                texts.append(last.text)
                job.emit(last)
        except Exception as exc:  # goes back to the request as an error response
            log.info("request failed: %s", exc)
            self.stats["failed"] += 1
            job.emit(JobEnd(exc))
            return None
        if last is None or not last.finished:
            self.stats["cancelled"] += 1
            job.emit(JobEnd())
            return None
        done = job.kind == "chat" and last.finish_reason in ("stop", "length") and not job.ctx.cancelled()
        return "".join(texts) if done else None

    def _remember(self, job: Job, answer: str) -> tuple[list, list]:
        """Note the chat `job` asked, with its `answer`; returns it and the other mixes that asked an
        earlier turn of it (the most recent first, each once)."""
        chat = [*job.prompt, ChatMessage("assistant", answer)]
        earlier: list[list[ActiveAdapter]] = []
        for seen, mix in self._recent:
            if mix != job.mix and mix not in earlier and len(seen) < len(chat) and _same(seen, chat[:len(seen)]):
                earlier.append(mix)
        self._recent = [(chat, job.mix)] + self._recent[:RECENT_CHATS - 1]
        return chat, earlier

    def _read_ahead(self, engine, chat: list, mixes: list) -> None:
        """Read `chat` under each of `mixes` whose cache holds most of it; stops as soon as a request is
        queued."""
        ctx = _UntilNextRequest(self._queue)
        try:
            for mix in mixes:
                if ctx.cancelled() or not callable(getattr(engine, "prewarm", None)):
                    break
                engine.set_adapters(mix)
                engine.prewarm(chat, ctx, min_reuse=PREVIOUS_MIX_MIN_REUSE)
        except Exception as exc:  # reading ahead only saves time; the next request reports real errors
            log.info("reading ahead skipped: %s", exc)
        finally:
            self.reading_ahead = False


def _same(a: Sequence[ChatMessage], b: Sequence[ChatMessage]) -> bool:
    return all(x.role == y.role and x.content == y.content for x, y in zip(a, b))


class _UntilNextRequest(JobContext):
    """Cancelled as soon as anything is queued for the engine (a request, or the shutdown marker)."""

    def __init__(self, waiting: queue.Queue):
        super().__init__()
        self._waiting = waiting

    def cancelled(self) -> bool:
        return super().cancelled() or not self._waiting.empty()
