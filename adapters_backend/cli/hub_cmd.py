"""`loradeck hub search|show|download|login` — the Hugging Face Hub from the command line."""
from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("hub", help="find, inspect and download adapters and GGUF models on the Hugging Face Hub")
    hs = p.add_subparsers(dest="hub_command", metavar="ACTION", required=True)

    s = hs.add_parser("search", help="search adapters (or --models: GGUF models)")
    s.add_argument("text", nargs="?")
    s.add_argument("--base", help="only adapters for this base model (Hub id)")
    s.add_argument("--format", choices=("peft", "gguf", "kohya", "ludwig"))
    s.add_argument("--sort", default="downloads", choices=("downloads", "likes", "recency", "created", "trending"))
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--offset", type=int, default=0)
    s.add_argument("--models", action="store_true", help="search GGUF base models instead of adapters")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_search)

    d = hs.add_parser("show", help="files, licence, rank/alpha and the compatibility verdict, before download")
    d.add_argument("repo")
    d.add_argument("--revision")
    d.add_argument("--base", help="base model to check against: GGUF file, HF folder or Hub id")
    d.add_argument("--engine", default="llama.cpp", choices=("llama.cpp", "torch"))
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_show)

    g = hs.add_parser("download", help="download into the HF cache (resumes); --install adds it to the library")
    g.add_argument("repo")
    g.add_argument("--revision")
    g.add_argument("--file", help="one file (e.g. a GGUF model file); default: the adapter's files")
    g.add_argument("--quant", help="for GGUF model repos: the quantization to fetch, e.g. Q4_K_M")
    g.add_argument("--install", action="store_true")
    g.add_argument("--name")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_download)

    lg = hs.add_parser("login", help="store a Hub token (for gated and private repositories)")
    lg.add_argument("--token", help="the token (default: read from stdin)")
    lg.set_defaults(func=run_login)


def _progress_ctx(quiet: bool):
    from .progress import progress_context
    return progress_context("downloading", "B", quiet)


def run_search(args) -> int:
    from ..hub import search
    rows = search(args.text, base=args.base, fmt=args.format, sort=args.sort, limit=args.limit,
                  offset=args.offset, kind="model" if args.models else "adapter")
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    if not rows:
        print("nothing found")
    for r in rows:
        print(f"{r.repo_id:<50} {r.format or '?':<7} {r.downloads or 0:>9,} ↓ {r.likes or 0:>6,} ♥  "
              f"{(r.updated or '')[:10]}  {r.base_model or ''}")
    return 0


def run_show(args) -> int:
    from ..hub import repo_details
    d = repo_details(args.repo, revision=args.revision, base=args.base, engine=args.engine)
    if args.json:
        print(json.dumps(d.as_dict(), indent=2))
        return 0
    if d.from_cache:
        print(d.note, file=sys.stderr)
    print(f"{d.repo_id} @ {d.revision}{'  (from the local cache)' if d.from_cache else ''}")
    for label, v in (("format", d.format), ("licence", d.license), ("base model", d.base_model),
                     ("rank", d.rank), ("alpha", d.alpha), ("targets", ", ".join(d.targets)),
                     ("gated", "yes (needs a token and accepted terms)" if d.gated else None)):
        if v not in (None, ""):
            print(f"  {label:<11} {v}")
    print("  files:")
    for f in d.files:
        print(f"    {f['name']:<50} {f['size'] or 0:>14,} bytes")
    if d.compat is not None:
        print(f"  verdict: {d.compat.get('summary')}")
    return 0


def run_download(args) -> int:
    from ..hub import download_files, gguf_files, install_from_hub, pick_gguf
    ctx = _progress_ctx(args.json)
    if args.install:
        e = install_from_hub(args.repo, revision=args.revision, name=args.name, ctx=ctx)
        out = {"installed": e.as_dict()}
    else:
        if args.file or args.quant:
            if args.file:          # a split model's first part brings its other parts (llama.cpp needs them all)
                parts = next((m["parts"] for m in gguf_files(args.repo, args.revision) if m["name"] == args.file),
                             [args.file])
            else:
                parts = pick_gguf(args.repo, args.quant, args.revision)["parts"]
            snap = download_files(args.repo, parts, args.revision, ctx)
            out = {"path": str(snap / parts[0])}
        else:
            from ..hub import download_adapter
            path, commit, _ = download_adapter(args.repo, args.revision, ctx)
            out = {"path": str(path), "revision": commit}
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps(out, indent=2) if args.json else
          (f"installed as '{out['installed']['name']}' ({out['installed']['id']})" if args.install else out["path"]))
    return 0


def run_login(args) -> int:
    from ..hub import set_token
    token = args.token if args.token is not None else sys.stdin.readline()
    name = set_token(token)
    print(f"token stored; logged in as {name}")
    return 0
