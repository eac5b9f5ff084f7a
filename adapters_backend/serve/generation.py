"""Running one request's job: text pieces out of the engine chunks (with the request's stop strings),
waiting for its turn while watching for the client leaving, and the streamed / whole responses."""
from __future__ import annotations

import asyncio
import json

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..chat import ReplyText
from ..engines.nonfinite import OutputNotNumbers
from ..errors import AdapterFormatError, BackendError, BaseModelError, IncompatibleAdapterError
from .errors import ApiError, error_body
from .protocol import Reply, usage
from .reasoning import ReasoningSplit
from .worker import EngineStopped, Job, JobEnd

POLL_SECONDS = 0.5                          # how often a waiting request checks that its client is still there


class ClientGone(Exception):
    pass


def engine_error(exc: BaseException) -> ApiError:
    """An error the engine raised for this request, as the HTTP error the client gets."""
    if isinstance(exc, ApiError):
        return exc
    msg = str(exc)
    if isinstance(exc, EngineStopped):
        return ApiError(msg, 503, code="engine_stopped")
    if "does not fit the context" in msg:
        return ApiError(msg, 400, param="messages", code="context_length_exceeded")
    if isinstance(exc, OutputNotNumbers):       # the same request fails the same way: a 4xx is not retried
        return (ApiError(msg, 400, param="adapters", code="output_not_numbers") if exc.with_adapters
                else ApiError(msg, 500, code="output_not_numbers"))
    if isinstance(exc, (AdapterFormatError, IncompatibleAdapterError, BaseModelError)):
        return ApiError(msg, 400, param="adapters", code="adapter_error")
    if isinstance(exc, BackendError):
        return ApiError(msg, 500, code="engine_error")
    return ApiError(f"internal error: {type(exc).__name__}: {exc}", 500)


class Generation:
    def __init__(self, job: Job, stops: tuple[str, ...]):
        self.job = job
        self._reply = ReplyText(stops, strip_leading=False)   # the engine already stripped what it should
        self.finish = "stop"
        self.prompt_tokens: int | None = None
        self.prompt_cached: int | None = None
        self.completion_tokens = 0

    @property
    def usage(self) -> dict:
        return usage(self.prompt_tokens, self.completion_tokens, self.prompt_cached)

    async def pieces(self):
        """Text pieces; the first one ("" possibly) comes once the engine accepted the request.
        Raises what the engine raised."""
        while True:
            item = await self.job.next()
            if isinstance(item, JobEnd):
                if item.error is not None:
                    raise item.error
                return                                   # cancelled (the server is stopping)
            self.prompt_tokens = item.prompt_tokens
            self.prompt_cached = getattr(item, "prompt_cached", None)
            self.completion_tokens = item.completion_tokens
            text = self._reply.push(item.text.encode("utf-8")) if item.text else ""
            if self._reply.stopped:                     # one of the request's stop strings
                self.job.cancel()
                self.finish = "stop"
                yield text
                return
            if item.finished:
                self.finish = "length" if item.finish_reason == "length" else "stop"
                yield text + self._reply.flush()
                return
            yield text


async def wait_for(request: Request, job: Job, awaitable):
    """Await `awaitable` (the first piece, or the whole reply); if the client disconnects meanwhile,
    cancel the job (skipped if still queued) and raise ClientGone."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ClientGone()
    except BaseException:
        job.cancel()
        task.cancel()
        raise


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def respond(request: Request, job: Job, gen: Generation, reply: Reply, stream: bool,
                  include_usage: bool = False, split: ReasoningSplit | None = None):
    """`split`: a chat reply's reasoning goes apart from its answer (`reasoning_content`)."""
    pieces = gen.pieces()
    if not stream:
        async def collect() -> str:
            return "".join([p async for p in pieces])
        try:
            text = await wait_for(request, job, collect())
        except ClientGone:
            return JSONResponse(error_body("client closed the request", 499), status_code=499)
        except Exception as exc:
            raise engine_error(exc) from exc
        if split is None:
            return JSONResponse(reply.full(text, gen.finish, gen.usage))
        reasoning, answer = split.push(text, end=True)
        return JSONResponse(reply.full(answer, gen.finish, gen.usage, reasoning or None))

    def event(text: str, end: bool = False) -> str | None:
        """The event for a piece of text (`end`: the last, with what was held back of the reply)."""
        if split is None:
            return _sse(reply.chunk(text)) if text else None
        reasoning, answer = split.push(text, end)
        return _sse(reply.chunk(answer or None, reasoning=reasoning)) if reasoning or answer else None

    # Wait for the engine to accept the request before sending headers, so a refused adapter or a
    # too-long prompt is a proper 4xx, not an error in the middle of a 200 stream.
    try:
        first = await wait_for(request, job, pieces.__anext__())
        done = False
    except StopAsyncIteration:
        first, done = "", True
    except ClientGone:
        return JSONResponse(error_body("client closed the request", 499), status_code=499)
    except Exception as exc:
        raise engine_error(exc) from exc

    async def events():
        try:
            if reply.kind == "chat":
                yield _sse(reply.chunk(None, first=True))
            if (sent := event(first)) is not None:
                yield sent
            if not done:
                async for text in pieces:
                    if (sent := event(text)) is not None:
                        yield sent
            if (sent := event("", end=True)) is not None:
                yield sent
            yield _sse(reply.chunk(None if reply.kind == "chat" else "", gen.finish))
            if include_usage:
                yield _sse(reply.usage_chunk(gen.usage))
            yield "data: [DONE]\n\n"
        except Exception as exc:  # headers are sent: report in the stream, as OpenAI does
            err = engine_error(exc)
            yield _sse(err.body(request))
        finally:
            job.cancel()            # the client left (this generator was cancelled) or we are done
            try:
                await pieces.aclose()
            except Exception:  # already ended by the cancellation
                pass

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
