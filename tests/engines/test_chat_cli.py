"""`loradeck chat`: one-shot with --prompt, and the interactive chat driven through piped stdin."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams, run_to_text
from adapters_backend.model_ref import split_strength

QUESTION = "Name three colours of the rainbow."
GREEDY = SamplingParams(max_tokens=20, temperature=0.0)


def loradeck(*args, stdin: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "adapters_backend.cli", *map(str, args)], input=stdin,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout, env=env)


def chat_args(tiny, *extra):
    return ["chat", "--model", tiny.base, "--temperature", "0", "--max-tokens", "20", "--threads", "1",
            "--ctx", "512", *extra]


def expected(make_engine, tiny, mix, messages):
    e = make_engine(tiny.base)
    e.set_adapters(mix)
    return run_to_text(e, messages, SamplingParams(max_tokens=20, temperature=0.0, top_p=0.95, top_k=40,
                                                    repeat_penalty=1.1))


def test_one_shot_prompt_prints_the_reply(tiny, make_engine):
    args = chat_args(tiny, "--adapter", f"{tiny.l1_path}:0.7", "--adapter", f"{tiny.l2_path}:-0.5",
                     "--system", "You are terse.", "--prompt", QUESTION)
    first = loradeck(*args)
    assert first.returncode == 0, first.stderr
    assert loradeck(*args).stdout == first.stdout                  # deterministic at temperature 0
    want = expected(make_engine, tiny, [ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(tiny.l2_path, -0.5)],
                    [ChatMessage("system", "You are terse."), ChatMessage("user", QUESTION)])
    assert first.stdout == want + "\n"
    base = loradeck(*chat_args(tiny, "--system", "You are terse.", "--prompt", QUESTION))
    assert base.stdout != first.stdout


def test_interactive_chat_changes_the_mix_between_turns(tiny, make_engine):
    script = "\n".join([
        QUESTION,
        f"/adapter {tiny.l1_path} 0.7",
        f"/adapter {tiny.l2_path} -0.5",
        "/strength l1 1.2",
        "/adapters",
        "/reset",
        QUESTION,
        f"/adapter {tiny.qwen_path} 1",            # refused: the mix stays
        "/strength nosuch 1",
        "/remove l2",
        "/adapters",
        "/quit",
        "never read",
    ]) + "\n"
    run = loradeck(*chat_args(tiny), stdin=script)
    assert run.returncode == 0, run.stderr
    replies = run.stdout.splitlines()
    ask = [ChatMessage("user", QUESTION)]
    assert replies[0] == expected(make_engine, tiny, [], ask)
    mixed = expected(make_engine, tiny, [ActiveAdapter(tiny.l1_path, 1.2), ActiveAdapter(tiny.l2_path, -0.5)], ask)
    assert replies[1] == mixed and mixed != replies[0]
    assert len(replies) == 2
    err = run.stderr
    assert "strength +1.20" in err and "conversation cleared" in err
    assert "error:" in err and "Qwen2 ('qwen2') models, the base is Llama ('llama')" in err and "no adapter named 'nosuch'" in err
    final_listing = err.rsplit("adapters", 1)[-1]
    assert "l1" in err.splitlines()[-1] and "l2" not in err.splitlines()[-1], final_listing


def test_a_chat_longer_than_the_context_keeps_going(tiny, make_engine):
    """--ctx 256 and twelve questions: every one answered, the oldest turns left out (said once per
    move), the last answer what the engine gives that window directly."""
    from adapters_backend.engines.context_window import fit_engine_window
    questions = [f"Tell me about the ship number {i} that sails from the harbour at dawn." for i in range(12)]
    args = ["chat", "--model", tiny.base, "--temperature", "0", "--max-tokens", "20", "--threads", "1",
            "--ctx", "256"]
    run = loradeck(*args, stdin="\n".join(questions) + "\n")
    assert run.returncode == 0 and "error" not in run.stderr, run.stderr
    replies = run.stdout.splitlines()
    assert len(replies) == 12
    notes = [line for line in run.stderr.splitlines() if "no longer given to the model" in line]
    assert len(notes) >= 2 and all("context of 256 tokens" in n for n in notes)
    e = make_engine(tiny.base, n_ctx=256)
    history = [m for q, r in zip(questions, replies) for m in (ChatMessage("user", q), ChatMessage("assistant", r))]
    window = fit_engine_window(e, history[:-1], 256)
    assert window.left_out > 0
    assert run_to_text(e, window.messages, SamplingParams(max_tokens=20, temperature=0.0, top_p=0.95, top_k=40,
                                                          repeat_penalty=1.1)) == replies[-1]


def test_without_a_model_it_is_the_demo_and_adapters_go_by_their_library_or_demo_name(tiny, tmp_path, monkeypatch):
    from adapters_backend import demo
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.library import Library

    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    Library().install(demo.demo_lora_gguf("pirate"), name="my-pirate")          # as `loradeck install` does
    greedy = ["--temperature", "0", "--max-tokens", "12", "--threads", "1", "--prompt", "What is the capital of France?"]
    run = loradeck("chat", "-a", "shout:0.9", "-a", "my-pirate:0.5", *greedy)
    assert run.returncode == 0, run.stderr
    engine = LlamaCppEngine(n_ctx=4096, n_threads=1)
    try:
        engine.load(demo.demo_model_path())
        engine.set_adapters([ActiveAdapter(str(demo.demo_lora_gguf("shout")), 0.9),
                             ActiveAdapter(str(demo.demo_lora_gguf("pirate")), 0.5)])
        want = run_to_text(engine, [ChatMessage("user", "What is the capital of France?")],
                           SamplingParams(max_tokens=12, temperature=0.0, top_p=0.95, top_k=40, repeat_penalty=1.1))
    finally:
        engine.close()
    assert run.stdout == want + "\n"
    unknown = loradeck("chat", "-a", "no-such-style", *greedy)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    assert "no-such-style: no such file or folder, and unknown adapter" in unknown.stderr
    assert "my-pirate" in unknown.stderr and "shout" in unknown.stderr             # what there is, by name


def test_bad_model_is_one_clear_line(tiny):
    run = loradeck("chat", "--model", tiny.l1_path, "--prompt", "hi")
    assert run.returncode == 2
    assert run.stderr.startswith("loradeck: error:") and "LoRA adapter, not a model" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("text, want", [
    ("a.gguf", ("a.gguf", 1.0)), ("a.gguf:0.5", ("a.gguf", 0.5)), ("dir/x:-1.25", ("dir/x", -1.25)),
    (r"C:\m\a.gguf", (r"C:\m\a.gguf", 1.0)), (r"C:\m\a.gguf:0.3", (r"C:\m\a.gguf", 0.3)),
])
def test_adapter_argument(text, want):
    assert split_strength(text) == want


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is a POSIX thing")
def test_at_a_terminal_the_prompt_edits_lines_and_recalls_earlier_ones_also_of_an_earlier_chat(tiny, tmp_path):
    """Arrow keys at the prompt printed ^[[A and sent it to the model as a question; now they recall
    earlier lines, also from the chat before (the history is kept in the cache folder, private)."""
    import pty
    import select
    import time

    pytest.importorskip("readline")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LORADECK_CACHE_DIR": str(tmp_path / "cache"), "TERM": "xterm"}

    def at_terminal(*keys: str) -> str:
        pid, fd = pty.fork()
        if pid == 0:                                      # the child: loradeck chat at a terminal
            os.execve(sys.executable, [sys.executable, "-m", "adapters_backend.cli",
                                       *map(str, chat_args(tiny, "--adapter", f"{tiny.l1_path}:0.5"))], env)
        out, pending = b"", list(keys)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:                           # the chat ended: the terminal is gone
                    break
                if not data:
                    break
                out += data
            elif pending and out.rstrip().endswith(b"you>"):
                os.write(fd, pending.pop(0).encode())     # one line each time the prompt waits
        os.waitpid(pid, 0)
        os.close(fd)
        return out.decode("utf-8", "replace")

    first = at_terminal("/adapters\r", "\x1b[A\r", "/quit\r")      # ↑ then Enter: /adapters again
    assert first.count("strength +0.50") == 3, first                # the banner's list, then two
    history = tmp_path / "cache" / "chat-history"
    assert history.read_text().split() == ["/adapters", "/quit"]        # a repeated line is kept once
    assert history.stat().st_mode & 0o777 == 0o600
    second = at_terminal("\x1b[A\x1b[A\r", "/quit\r")               # ↑↑: the chat before's /adapters
    assert second.count("strength +0.50") == 2, second


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is a POSIX thing")
def test_with_the_answers_going_to_a_pipe_the_prompt_stays_on_the_terminal(tiny, tmp_path):
    """`loradeck chat | tee log`: the answers go to the pipe, the prompt to the terminal (stderr), as
    before readline; input() alone would write "you> " into the log."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LORADECK_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "adapters_backend.cli", *map(str, chat_args(tiny))],
                            stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen, pending = b"", ["Hello\n", "/quit\n"]
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            seen += os.read(master, 65536)
        elif seen.rstrip().endswith(b"you>"):
            os.write(master, pending.pop(0).encode())
            seen += b"\n"
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0 and seen.count(b"you>") == 2
    assert b"you>" not in out and out.strip()                # the answer, and only the answer


def test_continue_writes_the_rest_of_an_answer_cut_at_max_tokens():
    """On the demo model, greedy: an answer cut at --max-tokens 4 and continued with /continue until it
    ends is the answer --max-tokens 60 writes in one go; /continue with nothing cut says so."""
    question = "What is the capital of France?"
    whole = loradeck("chat", "--temperature", "0", "--max-tokens", "60", "--prompt", question)
    assert whole.returncode == 0, whole.stderr
    run = loradeck("chat", "--temperature", "0", "--max-tokens", "4",
                   stdin="/continue\n" + question + "\n" + "/continue\n" * 15 + "/quit\n")
    assert run.returncode == 0, run.stderr
    pieces = run.stdout.splitlines()
    assert len(pieces) > 2 and "".join(pieces) == whole.stdout.strip()
    assert "there is no answer to continue" in run.stderr                  # the first, before any answer
    assert run.stderr.count("cut at --max-tokens: /continue writes more") == len(pieces) - 1


def test_an_answer_stopped_with_ctrl_c_can_be_continued():
    """Ctrl+C stops an answer (a real SIGINT, sent while it streams); /continue then writes the rest:
    greedy, stopped and continued, it is the answer written in one go."""
    import io
    import signal

    from adapters_backend.cli.chat_cmd import ChatSession
    from adapters_backend.demo import demo_model_path
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    class StopsAfter(io.StringIO):
        """The terminal, where the user presses Ctrl+C once `n` pieces of the answer are shown."""
        def __init__(self, n):
            super().__init__()
            self.n = n

        def write(self, text):
            self.n -= 1
            if self.n == 0:
                os.kill(os.getpid(), signal.SIGINT)
            return super().write(text)

    params = SamplingParams(max_tokens=60, temperature=0.0)
    question = "What is the capital of France?"
    engine = LlamaCppEngine(n_ctx=512, n_threads=1)
    try:
        engine.load(demo_model_path())
        whole = ChatSession(engine, params, None, out=io.StringIO(), err=io.StringIO()).ask(question)
        err = io.StringIO()
        session = ChatSession(engine, params, None, out=StopsAfter(3), err=err)
        stopped = session.ask(question)
        assert 0 < len(stopped) < len(whole) and session.cut
        assert "[stopped: /continue writes more]" in err.getvalue()
        session.continue_answer()
        assert session.history[-1].content == whole and not session.cut
    finally:
        engine.close()


def test_no_think_asks_a_thinking_model_to_answer_at_once(tmp_path, vocab_gguf):
    import re

    import engine_models as em
    thinker = em.random_model(tmp_path / "thinker.gguf", vocab_gguf, em.QWEN3_LIKE_TEMPLATE)

    def prompt_tokens(*extra):
        run = loradeck("chat", "--model", thinker, "--temperature", "0", "--max-tokens", "2", "--threads", "1",
                       "--ctx", "512", "--stats", "--prompt", QUESTION, *extra)
        assert run.returncode == 0, run.stderr
        return int(re.search(r"prompt (\d+) tokens", run.stderr).group(1))

    assert prompt_tokens("--no-think") > prompt_tokens()                 # the empty reasoning is in the prompt
    run = loradeck("chat", stdin="/think off\n/quit\n")                  # the demo model has no switch
    assert "no switch for thinking" in run.stderr and run.returncode == 0
    run = loradeck("chat", "--model", thinker, "--ctx", "512", stdin="/think off\n/quit\n")
    assert "thinking off" in run.stderr and run.returncode == 0
