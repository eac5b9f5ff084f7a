"""The FastAPI app: OpenAI's /v1/models, /v1/chat/completions, /v1/completions, plus /v1/adapters
and /health. `create_app()` wires it to one engine (worker.py) and an adapter resolver (resolver.py)."""
from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ..json_input import JsonInputError, parse_json
from .errors import ApiError, for_client, install_handlers, is_local_client
from .generation import Generation, respond
from .guard import RequestGuard, normalize_origin
from .mix import MixBuilder, MixItem, parse_adapters_field
from .protocol import Reply, chat_messages, completion_prompt, sampling, stop_strings
from .reasoning import ReasoningSplit, opened_by, splits_reasoning
from .resolver import AdapterResolver
from .worker import EngineWorker, Job

MAX_BODY = 8 * 1024 * 1024


def create_app(model_path: str | Path | None = None, *, engine_factory: Callable[[], object] | None = None,
               resolver: AdapterResolver | None = None, api_key: str | None = None,
               worker: EngineWorker | None = None, n_ctx: int = 4096, engine_id: str = "llama.cpp",
               check_compat: bool = True, bound_host: str = "127.0.0.1", allow_remote: bool = False,
               allow_origins: Iterable[str] = (), engine_options: dict | None = None) -> FastAPI:
    """An app serving `model_path` (default: the demo model) with one engine from `engine_factory`
    (default: llama.cpp with `n_ctx` and `engine_options`, e.g. n_threads, n_gpu_layers). Pass a started
    `worker` to load the model before the server starts (the CLI does, to report a bad model at once);
    the app closes it at shutdown either way.

    Requests must be addressed to `bound_host` or a localhost name unless `allow_remote`; web pages
    may use it only from `allow_origins` (see guard.py)."""
    allow_origins = [normalize_origin(o) for o in allow_origins]
    if worker is None:
        if model_path is None:
            from ..demo import demo_model_path
            model_path = demo_model_path()
        if engine_factory is None:
            def engine_factory():
                from ..engines import create_engine
                return create_engine(engine_id, **{"n_ctx": n_ctx, **(engine_options or {})})
        worker = EngineWorker(engine_factory, model_path)
    resolver = resolver or AdapterResolver()
    builder = MixBuilder(resolver, worker.model_path, engine_id, check_compat)
    model_id = worker.model_path.stem
    aliases = {"", model_id, worker.model_path.name, str(worker.model_path)}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if not worker.started:                           # the CLI starts it itself, to fail early
            await asyncio.to_thread(worker.start)
        try:
            yield
        finally:
            await asyncio.to_thread(worker.close)

    app = FastAPI(title="LoRA Deck", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.worker, app.state.resolver, app.state.model_id = worker, resolver, model_id
    install_handlers(app)
    if allow_origins:      # CORS headers for the allowed pages only; without any, no page can read an answer
        from starlette.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=allow_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(RequestGuard, bound_host=bound_host, allow_remote=allow_remote,
                       allow_origins=allow_origins)          # added last: runs first

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError("missing API key: send 'Authorization: Bearer <key>'", 401, code="missing_api_key")
        if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise ApiError("invalid API key", 401, code="invalid_api_key")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])

    async def read_body(request: Request) -> bytes:
        # Counted as it arrives: Starlette's request.body() holds all of it first, however large.
        too_large = ApiError(f"request body larger than {MAX_BODY // (1024 * 1024)} MB", 413)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise too_large
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > MAX_BODY:
                raise too_large
            parts.append(part)
        return b"".join(parts)

    async def read_json(request: Request) -> dict:
        # A browser sends text/plain and form POSTs cross-site without asking first (no CORS
        # preflight); JSON it must ask for, and guard.py answers only allowed pages.
        ctype = request.headers.get("content-type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            got = f" (got {ctype[:60]!r})" if ctype else ""
            raise ApiError(f"send the request body as JSON with 'Content-Type: application/json'{got}", 415,
                           code="unsupported_media_type")
        raw = await read_body(request)
        try:
            body = parse_json(raw or b"null")
        except JsonInputError as exc:
            raise ApiError(f"malformed JSON body: {exc}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError("the request body must be a JSON object", code="invalid_json")
        return body

    def preset_or_base(model) -> list[MixItem]:
        """`model` names the loaded model (no preset) or a saved mix preset ("name" or "preset:name")."""
        if model is None or (isinstance(model, str) and model in aliases):
            return []
        if not isinstance(model, str):
            raise ApiError("'model' must be a string", param="model", code="invalid_value")
        name = model[len("preset:"):] if model.startswith("preset:") else model
        items = builder.preset_items(name)
        if items is None:
            known = [model_id] + sorted(resolver.presets())
            raise ApiError(f"model '{model}' not found; this server has: {', '.join(known)}", 404, param="model",
                           code="model_not_found")
        return items

    async def start(request: Request, kind: str, prompt, tags: list[MixItem], body: dict):
        params, stops = sampling(body), stop_strings(body)
        items = preset_or_base(body.get("model")) + parse_adapters_field(body.get("adapters")) + tags
        mix = await asyncio.to_thread(builder.build, items)     # reads the library, checks compatibility
        job = Job(kind, prompt, mix, params)
        try:
            worker.submit(job)
        except RuntimeError as exc:
            raise ApiError(str(exc), 503) from None
        model = body.get("model") or model_id
        opts = body.get("stream_options") or {}
        split = (ReasoningSplit(opened_by(prompt))
                 if kind == "chat" and splits_reasoning(body) else None)
        return await respond(request, job, Generation(job, stops), Reply(kind, model), bool(body.get("stream")),
                             include_usage=isinstance(opts, dict) and bool(opts.get("include_usage")), split=split)

    @v1.post("/chat/completions")
    async def chat_completions(request: Request):
        body = await read_json(request)
        messages, tags = chat_messages(body)
        return await start(request, "chat", messages, tags, body)

    @v1.post("/completions")
    async def completions(request: Request):
        body = await read_json(request)
        prompt, tags = completion_prompt(body)
        return await start(request, "complete", prompt, tags, body)

    def show_paths(request: Request) -> bool:
        """File paths are listed for clients on this machine only, and only where names may be paths."""
        return resolver.allow_paths and is_local_client(request)

    def model_objects(paths: bool) -> list[dict]:
        created = int(worker.model_path.stat().st_mtime) if worker.model_path.exists() else int(time.time())
        out = [{"id": model_id, "object": "model", "created": created, "owned_by": "loradeck",
                "path": str(worker.model_path) if paths else None, "n_ctx": worker.info.get("n_ctx"),
                "device": worker.info.get("device")}]
        for name, entries in sorted(resolver.presets().items()):
            if name in aliases:
                continue
            mix = [{"name": e.name, "strength": e.strength} for e in entries if e.enabled]
            out.append({"id": name, "object": "model", "created": created, "owned_by": "loradeck-preset",
                        "adapters": mix})
        return out

    @v1.get("/models")
    async def models(request: Request):
        return {"object": "list", "data": await asyncio.to_thread(model_objects, show_paths(request))}

    @v1.get("/models/{name:path}")
    async def model(name: str, request: Request):
        for m in await asyncio.to_thread(model_objects, show_paths(request)):
            if m["id"] == name:
                return m
        raise ApiError(f"model '{name}' not found", 404, param="model", code="model_not_found")

    def adapter_objects(paths: bool) -> list[dict]:
        return [{"id": e.id, "object": "adapter", "name": e.name, "source": e.source, "format": e.format,
                 "description": e.description, **({"path": str(e.path)} if paths else {})}
                for e in resolver.entries()]

    @v1.get("/adapters")
    async def adapters(request: Request):
        # Re-read on every call: adapters installed while the server runs show up (and work) at once.
        return {"object": "list", "data": await asyncio.to_thread(adapter_objects, show_paths(request))}

    app.include_router(v1)

    @app.get("/health")
    async def health(request: Request):
        status = {"status": "ok", "model": model_id, "busy": worker.busy, "reading_ahead": worker.reading_ahead,
                  "queued": worker.queued, **worker.stats}
        failure = worker.failure
        if failure is not None:            # the engine thread is gone: say so, and fail the health check
            status.update(status="error", error=for_client(failure, request), busy=False)
            return JSONResponse(status, status_code=503)
        return status

    return app
