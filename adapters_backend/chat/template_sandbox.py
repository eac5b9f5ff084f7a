"""Chat templates that come with a model run in a helper process, under a time and a memory limit.

A chat template is a Jinja program shipped inside a model file (GGUF metadata, tokenizer_config.json).
Jinja's sandbox keeps it away from files and Python's internals, but not from working without end or
filling memory: two nested `range(100000)` loops, `'x' * 10**10`, a macro that calls itself twice per
level, or `10 ** 10**7` (which Jinja folds while compiling) each hang or kill the process that runs
them. So LoRA Deck never compiles or renders such a template itself: one helper process per LoRA Deck
process does (started on first use, a Python that imports nothing from the working folder), one
request at a time. A request that runs past its time limit, grows the helper past its memory limit,
or kills the helper, fails that request with a clear error and the helper is started afresh for the
next one. The memory limit is watched from this process on every system (psutil: the helper's
resident memory, every WATCH_SECONDS while a request runs; a thread inside the helper could not run
while one long allocation holds its interpreter) and, on Linux, also enforced in the helper itself
(an address-space limit, which macOS does not enforce and Windows does not have). The helper renders
with llama-cpp-python's Jinja2ChatFormatter, so prompts are what they were when rendering happened in
this process.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time

from ..isolated import isolated_env, isolated_python

RENDER_SECONDS = 10.0                  # one compile or render
START_SECONDS = 120.0                  # the helper's start (imports), on a busy machine
MEMORY_LIMIT = 256 << 20               # bytes the helper may add to what it holds once started;
                                       # a prompt of a whole 1M-token context takes a few tens of MB
WATCH_SECONDS = 0.02                   # how often its memory is looked at while a request runs
MEMORY_TEXT = "it needed more memory than a chat template may use"
HELPER_ARG = "--loradeck-chat-template-helper"   # a packaged app's launcher runs helper_main() when given it

class TemplateLimitError(Exception):
    """The template ran past a limit (time, memory, depth) or its helper died: a damaged or hostile
    template, not a conversation it refuses."""


class TemplateError(Exception):
    """The template refused the input (raise_exception, a bad variable) or did not compile;
    `stage` is "parse" or "render"."""

    def __init__(self, message: str, stage: str):
        super().__init__(message)
        self.stage = stage


# Variables a template may be given besides the conversation, and their type: only these, so a
# request can never replace what the renderer sets (messages, bos_token, raise_exception …).
TEMPLATE_SWITCHES = {"enable_thinking": bool}


def template_variables(variables: dict | None) -> dict:
    """The known template switches of `variables`, of the right type; anything else is left out."""
    return {k: v for k, v in (variables or {}).items() if isinstance(v, TEMPLATE_SWITCHES.get(k, ()))}


def helper_main() -> None:
    """The helper process: length-prefixed JSON requests on stdin, answers on stdout, "ready" once set up."""
    from jinja2 import TemplateSyntaxError
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    _cap_memory()
    inp, out = sys.stdin.buffer, sys.stdout.buffer

    def send(obj: dict) -> None:
        data = json.dumps(obj).encode()
        out.write(struct.pack("<I", len(data)) + data)
        out.flush()

    compiled: dict = {}
    send({"ready": True})
    while len(head := inp.read(4)) == 4:
        req = json.loads(inp.read(struct.unpack("<I", head)[0]))
        try:
            key = (req["template"], req["bos"], req["eos"], req["generation"])
            formatter = compiled.get(key)
            if formatter is None:
                try:
                    formatter = Jinja2ChatFormatter(template=req["template"], eos_token=req["eos"],
                                                    bos_token=req["bos"], add_generation_prompt=req["generation"])
                except (MemoryError, RecursionError):
                    raise
                except Exception as exc:
                    send({"ok": False, "stage": "parse", "error": str(exc) if isinstance(exc, TemplateSyntaxError)
                          else f"{type(exc).__name__}: {exc}"})
                    continue
                if len(compiled) >= 16:
                    compiled.clear()
                compiled[key] = formatter
            result = formatter(messages=req["messages"], **template_variables(req.get("variables")))
            send({"ok": True, "prompt": result.prompt, "added_special": bool(result.added_special)})
        except MemoryError:
            compiled.clear()
            send({"ok": False, "stage": "limit", "error": MEMORY_TEXT})
        except RecursionError:
            send({"ok": False, "stage": "limit", "error": "it nests deeper than a chat template may"})
        except Exception as exc:
            send({"ok": False, "stage": "render", "error": str(exc) or type(exc).__name__})


def _cap_memory() -> None:
    """Let this process grow by at most MEMORY_LIMIT (where the OS enforces an address-space limit)."""
    try:
        import resource
        with open("/proc/self/statm") as f:
            held = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (held + MEMORY_LIMIT, resource.RLIM_INFINITY))
    except (ImportError, OSError, ValueError):   # no RLIMIT_AS or no /proc (macOS, Windows): the time limit holds
        pass


def _helper_command() -> list[str]:
    """A Python running helper_main(); in a packaged app, whose executable is the app's launcher and not a
    Python, the launcher itself with HELPER_ARG."""
    if os.path.basename(sys.executable).lower().startswith("python"):
        return isolated_python("from adapters_backend.chat.template_sandbox import helper_main\nhelper_main()")
    return [sys.executable, HELPER_ARG]


class _Helper:
    def __init__(self):
        import psutil
        self.proc = subprocess.Popen(_helper_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=isolated_env(), cwd=tempfile.gettempdir())
        self.watched = psutil.Process(self.proc.pid)
        self.memory_cap: int | None = None           # resident bytes past which a request is stopped (once ready)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name="chat-template-helper", daemon=True).start()

    def resident(self) -> int | None:
        """The helper's resident memory in bytes (None once it has ended)."""
        import psutil
        try:
            return int(self.watched.memory_info().rss)
        except (psutil.Error, OSError):
            return None

    def ready(self) -> None:
        """Started: from now on it may grow by MEMORY_LIMIT over what it holds."""
        held = self.resident()
        self.memory_cap = None if held is None else held + MEMORY_LIMIT

    def _read(self) -> None:
        out = self.proc.stdout
        try:
            while True:
                head = out.read(4)
                if len(head) < 4:
                    break
                self.answers.put(json.loads(out.read(struct.unpack("<I", head)[0])))
        except (OSError, ValueError):
            pass
        self.answers.put(None)                       # ended

    def ask(self, request: dict | None, seconds: float) -> dict:
        """Send `request` (None: only wait) and wait for one answer; TemplateLimitError when none comes."""
        try:
            if request is not None:
                data = json.dumps(request).encode()
                self.proc.stdin.write(struct.pack("<I", len(data)) + data)
                self.proc.stdin.flush()
            answer = self._wait(seconds)
        except OSError:                              # it ended before reading the request
            answer = None
        if answer is None:
            raise TemplateLimitError("its helper process ended")
        return answer

    def _wait(self, seconds: float) -> dict | None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self.answers.get(timeout=WATCH_SECONDS)
            except queue.Empty:
                pass
            rss = self.resident() if self.memory_cap is not None else None
            if rss is not None and rss > self.memory_cap:
                self.stop()                          # before it takes the computer's memory
                raise TemplateLimitError(MEMORY_TEXT)
            if time.monotonic() > deadline:
                raise TemplateLimitError(f"it ran for more than {seconds:.0f} s and was stopped")

    def stop(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.proc.wait()


class TemplateSandbox:
    """The helper process and the requests to it (thread-safe: one request at a time)."""

    def __init__(self):
        self._helper: _Helper | None = None
        self._lock = threading.Lock()

    def render(self, template: str, bos: str, eos: str, generation: bool, messages: list[dict],
               variables: dict | None = None) -> tuple[str, bool]:
        """The prompt `template` makes of `messages`, and whether it wrote the special tokens itself;
        `variables`: the template's switches (template_variables). TemplateError when the template does
        not compile or refuses them; TemplateLimitError past a limit."""
        request = {"template": template, "bos": bos, "eos": eos, "generation": generation, "messages": messages,
                   "variables": variables or {}}        # the helper keeps only the known switches
        with self._lock:
            helper = self._started()
            try:
                answer = helper.ask(request, RENDER_SECONDS)
            except TemplateLimitError:
                self._discard()
                raise
            if not answer["ok"]:
                if answer["stage"] == "limit":
                    self._discard()                  # what it allocated goes with the process
                    raise TemplateLimitError(answer["error"])
                raise TemplateError(answer["error"], answer["stage"])
            return answer["prompt"], answer["added_special"]

    def _started(self) -> _Helper:
        if self._helper is None or self._helper.proc.poll() is not None:
            self._discard()
            helper = _Helper()
            try:
                if not helper.ask(None, START_SECONDS).get("ready"):
                    raise TemplateLimitError("its helper process did not start")
                helper.ready()
            except TemplateLimitError:
                helper.stop()
                raise
            self._helper = helper
        return self._helper

    def _discard(self) -> None:
        if self._helper is not None:
            self._helper.stop()
            self._helper = None

    def close(self) -> None:
        with self._lock:
            self._discard()


SANDBOX = TemplateSandbox()
atexit.register(SANDBOX.close)
