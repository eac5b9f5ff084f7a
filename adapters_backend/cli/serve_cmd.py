"""`loradeck serve [--model GGUF] [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--allow-remote]
[--allow-origin URL]…`

An OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models, /v1/adapters) on one
model, with LoRA adapters chosen per request:

    {"model": "...", "messages": [...], "adapters": [{"name": "shout", "strength": 0.8}]}
    "content": "<lora:pirate:0.6> What is the capital of France?"
    {"model": "<a saved mix preset>", ...}

Names come from the adapter library (re-read on every request) and the demo adapters. Web pages
cannot use the server unless their origin is allowed (serve/guard.py).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import BackendError


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible local server with per-request LoRA adapters",
                       description="Serve a GGUF model through an OpenAI-compatible HTTP API; each request "
                                   "picks its own adapters and strengths (an 'adapters' field, <lora:name:0.8> "
                                   "tags, or a saved mix preset as 'model').")
    p.add_argument("--model", "-m", type=Path, default=None, help="GGUF model file (default: the demo model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--api-key", default=os.environ.get("LORADECK_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $LORADECK_API_KEY; none = no key)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow listening on an address other machines can reach (and requests under any host name)")
    p.add_argument("--allow-origin", dest="allow_origins", action="append", metavar="URL",
                   default=[o for o in os.environ.get("LORADECK_ALLOW_ORIGINS", "").split(",") if o.strip()],
                   help="let web pages from this origin (e.g. http://localhost:3000) use the server; repeat for "
                        "more, '*' for any page (default: $LORADECK_ALLOW_ORIGINS, comma-separated; none)")
    p.add_argument("--n-ctx", "--ctx", dest="n_ctx", type=int, default=4096,
                   help="context length in tokens (0 = the model's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: llama.cpp's choice)")
    p.add_argument("--n-gpu-layers", type=int, default=-1,
                   help="layers on the GPU: -1 (default) every layer that fits, none without a GPU build "
                        "of llama.cpp; 0 = CPU only")
    p.add_argument("--kv-cache-mib", type=int, default=None,
                   help="memory for the KV caches of recent mixes, in MiB (default: automatic, room for four full "
                        "contexts, at most 1024; 0 = none): a request reuses the longest prompt prefix that one "
                        "of its own mix holds")
    p.add_argument("--no-compat-check", action="store_true", help="skip the compatibility check of adapters")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..serve.app import create_app
    from ..serve.guard import normalize_origin
    from ..serve.resolver import AdapterResolver
    from ..serve.runner import base_url, bind_socket, is_loopback, run_forever
    from ..serve.worker import EngineWorker

    remote = not is_loopback(args.host)
    if remote and not args.allow_remote:
        raise BackendError(f"{args.host} can be reached from other machines; add --allow-remote to listen there "
                           "(and --api-key to require a key)")
    origins = [normalize_origin(o) for o in args.allow_origins]       # a malformed one fails here, at once
    model = args.model
    if model is None:
        from ..demo import demo_model_path
        model = demo_model_path()
    model = Path(model).expanduser()
    if not model.is_file():
        raise BackendError(f"{model}: no such model file")
    sock = bind_socket(args.host, args.port)       # before loading: a taken port fails at once

    def engine_factory():
        from ..engines.llama_cpp_engine import LlamaCppEngine
        budget = None if args.kv_cache_mib is None or args.kv_cache_mib < 0 else args.kv_cache_mib * 2**20
        return LlamaCppEngine(n_ctx=args.n_ctx, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
                              kv_snapshot_budget=budget)

    print(f"loading {model} ...", file=sys.stderr)
    worker = EngineWorker(engine_factory, model)
    try:
        info = worker.start()
    except BaseException:
        sock.close()
        worker.close()
        raise
    # From another machine, file paths as adapter names would let clients probe this disk: names only.
    resolver = AdapterResolver(allow_paths=not remote)
    app = create_app(worker=worker, resolver=resolver, api_key=args.api_key or None,
                     check_compat=not args.no_compat_check, bound_host=args.host, allow_remote=args.allow_remote,
                     allow_origins=origins)
    url = base_url(sock)
    if remote:
        print(f"WARNING: listening on {args.host}: anyone who can reach this machine can use the model"
              f"{'' if args.api_key else ' (no --api-key set!)'}", file=sys.stderr)
    if "*" in origins:
        print("WARNING: --allow-origin '*': any web page you visit can use this server", file=sys.stderr)
    note = f"  note: {info['note']}\n" if info.get("note") else ""      # a cut context, an unusable template …
    print(f"LoRA Deck serving {info.get('name') or model.stem} (context {info.get('n_ctx')} tokens, "
          f"{info.get('device') or 'CPU'})\n{note}"
          f"  OpenAI base URL: {url}/v1    model: {app.state.model_id}\n"
          f"  adapters: {url}/v1/adapters    Ctrl+C stops", flush=True)
    try:
        run_forever(app, sock, "info" if args.verbose else "warning")
    finally:
        worker.close()                             # no-op when the app's shutdown already did it
    print("stopped", file=sys.stderr)
    return 0
