"""Legacy `adapter_model.bin` (a torch pickle) → safetensors, without ever running the pickle's code.

The file is opened only with `torch.load(weights_only=True)` (torch ≥ 2.10: earlier releases had a
code-execution and a memory-corruption bug in that unpickler, CVE-2025-32434 and CVE-2026-24747), and
in a separate Python process, so even a flaw in the unpickler cannot touch the app's memory. A pickle
that asks for anything but tensors and plain containers is refused; the tensors are re-saved as
safetensors in the cache (keyed by the file's sha256) and the pickle is never opened again.

The child runs isolated (`python -I`: no PYTHON* variables, no user site, no script or working
folder on sys.path) in an empty private working folder: otherwise a `torch.py` lying beside the
pickle — in the folder the user ran `loradeck inspect .` from — would be imported instead of torch.
It imports from exactly the folders this process imports from (so a `pip install --user` torch or
the packaged app's own folders still work), less the working folder and the adapter's folder.

The work is bounded by the file's real size: torch.load inflates a compressed record of the zip (a
1000× zip bomb reads fine), and a tensor saved as a view repeats its storage with a stride of 0 (a
1.5 KB file held a 1.6 GB tensor), both refused before memory or the cache is spent on them. torch.save
writes neither: its records are stored as they are and each tensor's data lies in the file.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import zipfile
from pathlib import Path

from ..disk_cache import mark_used, trim_cache
from ..errors import UnsafeFileError
from ..isolated import isolated_env, isolated_python
from ..kinds import is_count
from ..paths import cache_dir
from ..units import format_bytes
from .archive import file_sha256

MIN_TORCH = (2, 10)
TIMEOUT = 300

REFUSED = "loradeck-refused: "

# Runs in the child process: argv = [pickle, output]. Exit 3 = refused, with the reason on stderr in
# one JSON-quoted line after REFUSED (torch may print warnings around it); exit 4 = its tensors would
# take more bytes than the file holds, that count after REFUSED.
_CHILD = r"""
import json
import os
import sys
import torch
from safetensors.torch import save_file
src, dst = sys.argv[1], sys.argv[2]
held = os.path.getsize(src)
try:
    data = torch.load(src, map_location="cpu", weights_only=True)
except Exception as exc:
    print(REFUSED + json.dumps(f"{type(exc).__name__}: {exc}"), file=sys.stderr)
    sys.exit(3)
if not isinstance(data, dict) or not data or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                    for k, v in data.items()):
    print(REFUSED + json.dumps("it does not hold a flat mapping of names to tensors"), file=sys.stderr)
    sys.exit(3)
# Before .contiguous() writes them out: a view with a stride of 0 would fill memory from a few bytes.
wanted = sum(v.numel() * v.element_size() for v in data.values())
if wanted > held:
    print(REFUSED + json.dumps(wanted), file=sys.stderr)
    sys.exit(4)
save_file({k: v.contiguous() for k, v in data.items()}, dst)
""".replace("REFUSED", repr(REFUSED))


def _torch_version() -> tuple[int, int] | None:
    try:
        from importlib.metadata import version
        parts = version("torch").split("+")[0].split(".")
        return int(parts[0]), int(parts[1])
    except Exception:  # not installed or an odd version string
        return None


def pickle_to_safetensors(path: Path) -> Path:
    """The tensors of a torch pickle as a cached safetensors file, or UnsafeFileError saying why not."""
    path = Path(path)
    have = _torch_version()
    if have is None or have < MIN_TORCH:
        need = ".".join(map(str, MIN_TORCH))
        raise UnsafeFileError(path, "holds the weights as a Python pickle; LoRA Deck opens pickles only with torch's "
                                    f"weights-only loader from torch {need} on (install the extra: "
                                    f"pip install 'loradeck[torch]'), or use adapter_model.safetensors")
    out = cache_dir() / "from-pickle" / f"{file_sha256(path)}.safetensors"
    if out.is_file():
        mark_used(out)
        return out
    _check_records(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.incomplete")
    try:
        with tempfile.TemporaryDirectory(prefix="loradeck-unpickle-") as workdir:
            proc = subprocess.run(isolated_python(_CHILD, str(path.resolve()), str(tmp.resolve()),
                                                  untrusted=(path.resolve().parent,)),
                                  capture_output=True, text=True, timeout=TIMEOUT, cwd=workdir,
                                  env=isolated_env())
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise UnsafeFileError(path, f"reading the pickle took longer than {TIMEOUT} s; refused") from None
    if proc.returncode == 4:
        tmp.unlink(missing_ok=True)
        raise UnsafeFileError(path, f"holds tensors that would take {format_bytes(_refused_count(proc.stderr)) or 'more'} "
                                    f"from a file of {format_bytes(path.stat().st_size)}: a tensor repeats the same "
                                    "data (a view with a stride of 0, which torch.save keeps); refused before "
                                    "building it")
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise UnsafeFileError(path, f"is a pickle that torch's weights-only loader refuses ({refusal_reason(proc.stderr)})"
                                    "; nothing in it was run. Do not open it with weights_only=False: that would "
                                    "run any code it carries. Ask for adapter_model.safetensors instead")
    os.replace(tmp, out)
    trim_cache(out.parent)
    return out


def _check_records(path: Path) -> None:
    """torch.load unpacks a zip's compressed records in memory: their unpacked sizes must fit in the
    file (torch.save stores records as they are), or a small file would fill the memory."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":      # as torch.load tells a zip: the pre-1.6 format, its data in the file
                return
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise UnsafeFileError(path, f"is a pickle in a damaged zip ({exc}); refused") from None
    held = path.stat().st_size
    if unpacked > held:
        raise UnsafeFileError(path, f"is a compressed torch file that unpacks to {format_bytes(unpacked)} from "
                                    f"{format_bytes(held)} (torch.save does not compress); refused without "
                                    "unpacking it")


def _refused_payload(stderr: str) -> object:
    """What the child wrote after its last REFUSED marker, JSON-decoded (the raw text if it is not
    JSON); None when it wrote none."""
    payload = None
    for line in stderr.splitlines():
        if line.startswith(REFUSED):
            try:
                payload = json.loads(line[len(REFUSED):])
            except ValueError:
                payload = line[len(REFUSED):]
    return payload


def _refused_count(stderr: str) -> int | None:
    n = _refused_payload(stderr)
    return n if is_count(n) else None


def refusal_reason(stderr: str) -> str:
    """What the child said about the refused pickle, without torch's advice to retry with
    weights_only=False (the one thing never to do with a file that failed this check)."""
    text = _refused_payload(stderr)
    if not text or not isinstance(text, str):
        lines = stderr.strip().splitlines()
        return lines[-1][:300] if lines else "the loader failed"
    # torch ≥ 2.6: "Weights only load failed. … weights_only=False will likely succeed … WeightsUnpickler
    # error: <the reason>. Please … Check the documentation …" — keep <the reason> alone.
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s+Please\b|\n\s*\n|\s*Check the documentation|$)", text,
                  re.S)
    if m:
        return f"{text.split(':', 1)[0]}: {' '.join(m.group(1).split())}"[:300]
    first = text.splitlines()[0]
    return "it holds more than plain tensors" if "weights_only" in first else first[:300]
