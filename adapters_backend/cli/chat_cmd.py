"""`loradeck chat [--model BASE.gguf] [--adapter ADAPTER[:STRENGTH] ...] [--prompt TEXT] ...`

Without --model: the built-in demo model. An adapter is a file or folder, or the name (or id) of one in
the adapter library or of a demo adapter. With --prompt: print the reply and exit (deterministic at
--temperature 0). Without: an interactive terminal chat; commands change the adapter mix
between turns, without reloading the model:

    /adapter ADAPTER [STRENGTH]   add an adapter, a path or a library or demo adapter's name
                               (or set the strength of one already in the mix)
    /strength NAME STRENGTH    change a strength (NAME: adapter name or its number in /adapters)
    /remove NAME               take an adapter out of the mix (frees it)
    /adapters                  list the mix
    /system TEXT               set the system prompt
    /think on|off              a thinking model with a switch for it (Qwen3): reason first, or answer at once
    /continue                  write more of the last answer, cut at --max-tokens or stopped (Ctrl+C)
    /reset                     forget the conversation (the mix stays)
    /help, /quit

At a terminal, the arrow keys edit the line and recall earlier ones, also of earlier chats (kept in
the cache folder's chat-history).
"""
from __future__ import annotations

import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import BackendError
from ..model_ref import REMOTE_ENGINES as REMOTE
from ..model_ref import engine_for, is_url, split_strength

HISTORY_LINES = 1000         # lines of the interactive chat's history kept between chats
CUT_SHORT = ("length", "cancelled")   # how an answer ended that /continue can write further
HELP = __doc__.split("between turns, without reloading the model:", 1)[1].strip("\n")


def add_parser(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model and a mix of LoRA adapters (llama.cpp or PyTorch)",
                       description="Chat with a model in the terminal, with any number of LoRA adapters "
                                   "at their own strengths. With --prompt, print one reply and exit.")
    p.add_argument("--model", "-m", default=None,
                   help="GGUF model file (llama.cpp), a Hugging Face model folder or Hub id (--engine torch), "
                        "or a server URL (--engine llama-server, vllm, lorax); default: the demo model")
    p.add_argument("--engine", choices=("auto", "llama.cpp", "torch", "llama-server", "vllm", "lorax"),
                   default="auto",
                   help="auto: llama.cpp for a .gguf file, torch for a model folder or Hub id; llama-server, "
                        "vllm, lorax: chat through that running server, --model being its URL")
    p.add_argument("--api-key", default=None, help="remote engines: the server's API key, if it needs one")
    p.add_argument("--device", default=None, help="torch engine: cuda, mps or cpu (default: the best present)")
    p.add_argument("--adapter", "-a", action="append", default=[], metavar="ADAPTER[:STRENGTH]",
                   help="adapter file or folder (any supported format), or the name or id of an installed or "
                        "demo adapter; strength in [-2, 2], default 1; repeat for a mix")
    p.add_argument("--prompt", "-p", help="one message: print the reply and exit")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy, deterministic (default 0.7)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--repeat-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=-1, help="-1 = random")
    p.add_argument("--no-think", dest="thinking", action="store_false", default=None,
                   help="a thinking model whose template has a switch for it (Qwen3 …): answer without "
                        "reasoning first")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: llama.cpp's choice)")
    p.add_argument("--n-gpu-layers", type=int, default=-1,
                   help="layers on the GPU: -1 (default) every layer that fits, none without a GPU build "
                        "of llama.cpp; 0 = CPU only")
    p.add_argument("--ctx", type=int, default=4096, help="context length in tokens (0 = the model's)")
    p.add_argument("--stats", action="store_true", help="print token counts and speed to stderr")
    p.set_defaults(func=run)


class ChatSession:
    """The conversation and the mix of an interactive chat; every mix change goes to the engine at once."""

    def __init__(self, engine, params, system: str | None, out=None, err=None, stats: bool = False,
                 n_ctx: int | None = None, remote: bool = False):
        """`n_ctx`: the model's context; once the chat outgrows it, its oldest turns are left out.
        `remote`: the engine is a server, which may know adapters by names of its own."""
        self.engine, self.params, self.system, self.remote = engine, params, system, remote
        # The streams of the moment, not of import time: the command wraps them (cli/terminal.py).
        self.out, self.err, self.stats = out or sys.stdout, err or sys.stderr, stats
        self.n_ctx = n_ctx
        self.left_out = 0              # oldest messages the model is no longer given
        self.history: list = []
        self.cut = False               # the last answer was cut at --max-tokens or stopped (/continue goes on)
        self.mix: list = []            # ActiveAdapter, in the order added

    # -- mix --
    def _apply(self, mix) -> None:
        self.engine.set_adapters(mix)          # raises → the engine and self.mix keep the previous mix
        self.mix = mix

    def add_adapter(self, spec: str, strength: float) -> None:
        from ..engines.base import ActiveAdapter
        target, name = find_adapter(spec, self.remote)
        mix = [a for a in self.mix]
        for i, a in enumerate(mix):
            if a.path == target:
                mix[i] = ActiveAdapter(a.path, strength, a.layer_scales, a.name)
                break
        else:
            mix.append(ActiveAdapter(target, strength, name=self._unique_name(name or target)))
        self._apply(mix)

    def _unique_name(self, path_or_name: str) -> str:
        from ..engines.base import adapter_display_name
        base = adapter_display_name(path_or_name)
        names = {a.display_name for a in self.mix}
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        return name

    def find(self, name: str) -> int:
        if name.isdigit() and 1 <= int(name) <= len(self.mix):
            return int(name) - 1
        for i, a in enumerate(self.mix):
            if a.display_name == name or a.path == name:
                return i
        raise BackendError(f"no adapter named {name!r} in the mix; see /adapters")

    def set_strength(self, name: str, strength: float) -> None:
        from ..engines.base import ActiveAdapter
        i = self.find(name)
        a = self.mix[i]
        mix = list(self.mix)
        mix[i] = ActiveAdapter(a.path, strength, a.layer_scales, a.name)
        self._apply(mix)

    def remove(self, name: str) -> None:
        i = self.find(name)
        self._apply(self.mix[:i] + self.mix[i + 1:])

    def describe_mix(self) -> str:
        if not self.mix:
            return "no adapters (the base model)"
        running = {d["path"]: d["running"] for d in self.engine.adapters()}
        lines = [f"  {i}. {a.display_name}  strength {a.strength:+.2f}  [{running.get(a.path, '?')}]  {a.path}"
                 for i, a in enumerate(self.mix, 1)]
        return "\n".join(lines)

    # -- conversation --
    def ask(self, text: str) -> str:
        from ..engines.base import ChatMessage
        reply, finish = self._answer(self.history + [ChatMessage("user", text)])
        self.history += [ChatMessage("user", text), ChatMessage("assistant", reply)]
        self.cut = finish in CUT_SHORT and bool(reply)
        return reply

    @property
    def _thinking_switch(self) -> bool:
        return bool(getattr(self.engine, "info", {}).get("thinking_switch", self.remote))

    @property
    def _can_continue(self) -> bool:
        return bool(getattr(self.engine.capabilities, "continue_answer", False))

    def continue_answer(self) -> str:
        """More of the last answer, cut at --max-tokens or stopped; the engine goes on from its text."""
        from ..engines.base import ChatMessage
        if not self._can_continue:
            raise BackendError("/continue needs an engine that goes on from a text: llama.cpp, PyTorch, or a "
                               "llama-server that continues an assistant's text (its default)")
        if not self.cut or not self.history:
            raise BackendError("there is no answer to continue: /continue writes more of the last answer when it "
                               "was cut at --max-tokens or stopped with Ctrl+C")
        more, finish = self._answer(self.history, continuing=True)
        self.history[-1] = ChatMessage("assistant", self.history[-1].content + more)
        self.cut = finish in CUT_SHORT
        return more

    def _answer(self, turns: list, continuing: bool = False) -> tuple[str, str | None]:
        """Stream the reply to `turns` (a question; with `continuing`, an answer to go on with) to the
        output; returns its text and why it ended."""
        from ..engines.base import ChatMessage
        from ..jobs import JobContext

        messages = ([ChatMessage("system", self.system)] if self.system else []) + list(turns)
        from ..engines.context_window import can_fit, fit_engine_window
        if self.n_ctx and can_fit(self.engine):
            window = fit_engine_window(self.engine, messages, self.n_ctx, continuing)
            if window.left_out > self.left_out:
                self.err.write(f"[the oldest {window.left_out} messages are no longer given to the model: the chat "
                               f"outgrew its context of {self.n_ctx} tokens]\n")
            messages, self.left_out = window.messages, window.left_out
        ctx = JobContext()
        previous = _on_sigint(lambda *_: ctx.cancel())
        pieces, last = [], None
        try:
            for chunk in self.engine.generate(messages, self.params, ctx):
                if chunk.text:
                    pieces.append(chunk.text)
                    self.out.write(chunk.text)
                    self.out.flush()
                last = chunk
        finally:
            _on_sigint(previous)
        self.out.write("\n")
        self.out.flush()
        finish = last.finish_reason if last is not None else None
        if last is not None and (self.stats or finish == "cancelled"):
            tps = f", {last.tokens_per_second:.1f} tokens/s" if last.tokens_per_second else ""
            self.err.write(f"[{last.completion_tokens} tokens{tps}, prompt {last.prompt_tokens} tokens, "
                           f"{finish}]\n")
        if finish in CUT_SHORT and pieces and self._can_continue:
            self.err.write("[cut at --max-tokens: /continue writes more]\n" if finish == "length"
                           else "[stopped: /continue writes more]\n")
        return "".join(pieces), finish

    def command(self, line: str) -> bool:
        """Run one /command; returns False to quit."""
        try:
            parts = shlex.split(line, posix=not sys.platform.startswith("win"))
        except ValueError:
            parts = line.split()
        cmd, args = parts[0].lower(), parts[1:]
        if cmd in ("/quit", "/exit", "/q"):
            return False
        try:
            if cmd == "/adapter" and args:
                strength = 1.0
                if len(args) >= 2 and _is_number(args[-1]):
                    strength = float(args[-1])
                    args = args[:-1]
                self.add_adapter(" ".join(args), strength)
                self.err.write(self.describe_mix() + "\n")
            elif cmd == "/strength" and len(args) >= 2:
                self.set_strength(" ".join(args[:-1]), float(args[-1]))
                self.err.write(self.describe_mix() + "\n")
            elif cmd == "/remove" and args:
                self.remove(" ".join(args))
                self.err.write(self.describe_mix() + "\n")
            elif cmd == "/adapters":
                self.err.write(self.describe_mix() + "\n")
            elif cmd == "/system":
                self.system = " ".join(args) or None
                self.err.write("system prompt set\n" if self.system else "system prompt cleared\n")
            elif cmd == "/think" and len(args) == 1 and args[0].lower() in ("on", "off"):
                self.params = replace(self.params, thinking=args[0].lower() == "on")
                self.err.write(("thinking " + args[0].lower()) if self._thinking_switch else
                               "this model has no switch for thinking in its chat template: nothing changes")
                self.err.write("\n")
            elif cmd == "/continue":
                self.continue_answer()
            elif cmd == "/reset":
                self.history, self.left_out, self.cut = [], 0, False
                self.err.write("conversation cleared (the adapter mix stays)\n")
            elif cmd == "/help":
                self.err.write(HELP + "\n")
            else:
                self.err.write(f"unknown command or missing argument: {line.strip()}; /help lists the commands\n")
        except (BackendError, ValueError) as exc:
            self.err.write(f"error: {exc}\n")
        return True


def find_adapter(spec: str, remote: bool = False) -> tuple[str, str | None]:
    """What `--adapter` / `/adapter` name: an existing file or folder, else an adapter of the library (by
    id or name) or a demo adapter. Returns (path, its library or demo name or None). A remote engine's
    server may know names of its own: for it, what is not a local path goes as it is."""
    local = Path(spec).expanduser()
    if local.exists() or remote:
        return (str(local) if local.exists() else spec), None
    from ..serve.resolver import AdapterResolver, UnknownAdapter
    try:
        found = AdapterResolver(allow_paths=False).resolve(spec)
    except UnknownAdapter as exc:
        raise BackendError(f"{spec}: no such file or folder, and {exc}") from None
    return str(found.path), found.name


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _on_sigint(handler):
    """Swap the Ctrl+C handler (only possible on the main thread); returns the previous one."""
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


def run(args) -> int:
    from ..engines.base import ActiveAdapter, SamplingParams
    from ..engines.llama_cpp_engine import LlamaCppEngine

    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, repeat_penalty=args.repeat_penalty, seed=args.seed,
                            thinking=args.thinking)
    engine_id = args.engine
    if args.model is None:
        if engine_id not in ("auto", "llama.cpp"):
            raise BackendError(f"--engine {engine_id} needs --model (the demo model is a GGUF for llama.cpp)")
        from ..demo import demo_model_path
        args.model = str(demo_model_path())
    if engine_id == "auto":
        if is_url(args.model):
            raise BackendError(f"{args.model} is a server address: say which server it is with --engine "
                               "llama-server, vllm or lorax")
        engine_id = engine_for(args.model)
    if engine_id in REMOTE:
        from ..engines import create_engine
        engine = create_engine(engine_id, api_key=args.api_key)
    elif engine_id == "torch":
        from ..engines.torch_engine import TorchEngine
        engine = TorchEngine(device=args.device, n_ctx=args.ctx or 4096, n_threads=args.threads)
    else:
        engine = LlamaCppEngine(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers)
    try:
        model = args.model
        if engine_id not in REMOTE and Path(model).expanduser().exists():
            model = Path(model).expanduser()
        info = engine.load(model)
        session = ChatSession(engine, params, args.system, stats=args.stats, n_ctx=info.get("n_ctx"),
                              remote=engine_id in REMOTE)
        mix = []
        for spec in args.adapter:
            path, strength = split_strength(spec)
            path, name = find_adapter(path, session.remote)
            mix.append(ActiveAdapter(path, strength, name=name))
        if mix:
            session._apply(mix)
        if args.prompt is not None:
            session.ask(args.prompt)
            return 0
        return interactive(session, info)
    finally:
        engine.close()


def interactive(session: ChatSession, info: dict) -> int:
    tty = sys.stdin.isatty()
    err = session.err
    where = f", {info['device']}" if info.get("device") else ""
    err.write(f"LoRA Deck chat: {info.get('name')} ({info.get('architecture')}, context {info.get('n_ctx')} "
              f"tokens{where}). /help lists the commands.\n")
    if info.get("note"):
        err.write(f"note: {info['note']}\n")
    err.write("adapters:\n" + session.describe_mix() + "\n")
    history = _line_editing() if tty else None
    # input() edits lines only when stdout is a terminal too, and writes its prompt to stdout: with the
    # answers going to a pipe or a file, the prompt goes to stderr, as the answers' notes do.
    prompt_on_stderr = tty and not sys.stdout.isatty()
    try:
        while True:
            if prompt_on_stderr:
                err.write("you> ")
                err.flush()
            try:
                line = input("you> " if tty and not prompt_on_stderr else "")
            except EOFError:
                return 0
            except KeyboardInterrupt:
                err.write("\n")
                return 0
            if not _turn(session, line):
                return 0
    finally:
        if history is not None:
            history()


def _turn(session: ChatSession, line: str) -> bool:
    """One line typed at the prompt; False to end the chat."""
    if not line.strip():
        return True
    if line.startswith("/"):
        return session.command(line)
    try:
        session.ask(line)
    except BackendError as exc:
        session.err.write(f"error: {exc}\n")
    return True


def _line_editing():
    """Arrow keys, editing and history at the prompt, also of earlier chats (GNU readline or libedit,
    where Python has one; Windows' console edits lines on its own). Returns what saves the history at
    the end, or None."""
    try:
        import readline
    except ImportError:
        return None
    from ..paths import cache_dir
    try:
        path = cache_dir() / "chat-history"
    except OSError:
        return None
    readline.set_history_length(HISTORY_LINES)
    try:
        readline.read_history_file(path)
    except OSError:                     # none yet, or unreadable: start without
        pass

    def save() -> None:
        try:
            readline.write_history_file(path)
            path.chmod(0o600)           # what was typed is the user's own
        except OSError:
            pass
    return save
