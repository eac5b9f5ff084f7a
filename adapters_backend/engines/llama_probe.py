"""Open a GGUF model in a child process before this process opens it.

llama.cpp ends the whole process (GGML_ASSERT → abort) on some damaged or hostile model files that
pass every check it reports as an error: a `block_count` past 512 while it reads the
hyper-parameters, a negative norm epsilon at the first evaluation. In the app that was the app gone,
and since the last model loads again at start, gone again at every start. So a model is first opened
in a child (CPU only, a 64-token context: a text tokenized, a few tokens evaluated, the next one
picked and evaluated); only when the child ends normally does this process open it. A child that
llama.cpp itself refuses (NULL model or context, a decode error) hands the matter back: this
process's own load then reports llama.cpp's reason as before. A file that passed (the same resolved
path, size and modification time of every part) is remembered, in the cache folder and by the
process, and not checked again.

The child reads the model through a memory map like the load that follows, so on a computer whose
memory holds the model it warms the page cache for that load rather than doubling the read.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import BaseModelError
from ..isolated import isolated_env, isolated_python
from ..jobs import JobContext
from ..passed_checks import PassedChecks, identity
from .llama_runtime import extra_buffers_safe

log = logging.getLogger(__name__)

REFUSED = 17                 # the child's exit code when llama.cpp returned an error instead of crashing
TIMEOUT = 600.0              # a child still busy after this long is stopped (a file that makes llama.cpp loop)
POLL = 0.1                   # how often the wait looks at cancel
PASSED = PassedChecks("probed-models.json")     # models that opened cleanly

_CHILD = r"""
import ctypes, os, sys
import llama_cpp as L

def main(path):
    L.llama_backend_init()
    silent = L.llama_log_callback(lambda level, text, data: None)
    L.llama_log_set(silent, ctypes.c_void_p())
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    if sys.argv[3] != "1":
        mp.use_extra_bufts = False
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        return REFUSED
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 64, 64, 64, 1
    cp.n_threads = cp.n_threads_batch = max(1, min(8, os.cpu_count() or 1))
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        return REFUSED
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    text = "Hello, how are you? \u00e9\u4e16\U0001F600 <s></s>".encode()
    buf = (L.llama_token * 64)()
    n = L.llama_tokenize(vocab, text, len(text), buf, 64, True, True)
    if n <= 0 or n_vocab <= 0:
        return REFUSED
    if L.llama_decode(ctx, L.llama_batch_get_one(buf, min(n, 4))) != 0:
        return REFUSED
    logits = L.llama_get_logits_ith(ctx, -1)
    best = max(range(n_vocab), key=lambda i: logits[i])
    piece = ctypes.create_string_buffer(256)
    L.llama_token_to_piece(vocab, best, piece, 256, 0, True)
    nxt = (L.llama_token * 1)(best)
    if L.llama_decode(ctx, L.llama_batch_get_one(nxt, 1)) != 0:
        return REFUSED
    return 0

REFUSED = int(sys.argv[2])
sys.exit(main(sys.argv[1]))
"""


def crash_reason(stderr: str, returncode: int) -> str:
    """What llama.cpp said as it stopped (its GGML_ASSERT line), else how the child ended."""
    for line in stderr.splitlines():
        if "GGML_ASSERT" in line or "GGML_ABORT" in line or "error:" in line.lower():
            text = line.strip()
            return text[text.find("GGML_"):] if "GGML_" in text else text[-300:]
    if returncode < 0:
        import signal
        try:
            return f"ended by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"ended by signal {-returncode}"
    return f"exit code {returncode}"


def probe_model(path: Path, ctx: JobContext | None = None, other_parts: tuple[Path, ...] = ()) -> None:
    """Open `path` (a GGUF model; with `other_parts`, the first part of a split one) in a child first;
    BaseModelError naming the file when llama.cpp crashes or hangs on it. Returns when it opened cleanly,
    when llama.cpp refused it with an error (the caller's own load says why), or when no child could be
    run (logged)."""
    ctx = ctx or JobContext()
    key = identity([path, *other_parts])
    if key in PASSED:
        return
    ctx.report(0.0, 1.0, "checking the model file in a separate process")
    with tempfile.TemporaryDirectory(prefix="loradeck-probe-") as workdir, \
            tempfile.TemporaryFile(dir=workdir) as err:
        try:
            extra = "1" if extra_buffers_safe() else "0"        # the same buffers as the load that follows
            proc = subprocess.Popen(isolated_python(_CHILD, str(path.resolve()), str(REFUSED), extra,
                                                    untrusted=(path.resolve().parent,)),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    cwd=workdir, env={**isolated_env(), "GGML_NO_BACKTRACE": "1"})
        except OSError as exc:
            log.warning("could not check %s in a separate process (%s); opening it directly", path, exc)
            return
        started = time.monotonic()
        try:
            while proc.poll() is None:
                ctx.check()
                if time.monotonic() - started > TIMEOUT:
                    raise BaseModelError(path, f"llama.cpp was still opening it after {TIMEOUT:.0f} s in a "
                                               "separate process (stopped); LoRA Deck did not open it")
                time.sleep(POLL)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read(1 << 20).decode("utf-8", "replace")
    rc = proc.returncode
    if rc == 0:
        PASSED.add(key)
        return
    if rc == REFUSED:
        return
    if rc == 1 and "Traceback" in stderr:     # the child's Python failed, not llama.cpp: nothing to judge by
        log.warning("could not check %s in a separate process:\n%s", path, stderr[-2000:])
        return
    raise BaseModelError(path, f"llama.cpp stopped while opening it ({crash_reason(stderr, rc)}): the file is "
                               "damaged, or was made by a tool that wrote settings llama.cpp cannot run. LoRA Deck "
                               "tried it in a separate process and did not open it")
