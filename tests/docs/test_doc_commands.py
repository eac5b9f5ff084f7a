"""Every command README.md and docs/*.md show, run as a user following them would, so the docs
cannot drift from what the commands do.

Each ```sh / ```bash block is read line by line (a command continues over a trailing backslash or an
open quote) and run with bash in a fresh *user folder* per document, blocks in order, so a command
sees what the ones before it did (installs, written files):

- `loradeck …` (and `python3 dev.py loradeck …`, the same command in the dev venv) runs through the
  installed `loradeck` entry point and must exit 0 — or be in SKIPPED, with the reason.
- `# …` lines right after a command are its output as the docs show it: each must appear in what the
  command printed, in order, with runs of whitespace compared as one space and `…` standing for
  anything.
- `loradeck serve` starts in the background on a free port (the docs' port is rewritten, in curl URLs
  and in the shown output too) and runs until the next `serve` or the end of the document; then
  Ctrl+C (SIGINT) must stop it with exit status 0.
- `curl` goes to the running server; `python examples/…` runs; `pip install ./examples/…` installs into
  the user folder, offline (--no-index --no-build-isolation), never into the test environment: without
  --target into a folder put on PYTHONPATH for the rest of the document.
- Anything else (installing LoRA Deck itself, apt, briefcase, dpkg) is not a LoRA Deck command and is
  not run; docs/packaging.md, which builds and installs the .deb, is left to
  packaging/briefcase/build_linux_deb.py.

The user folder holds stand-ins for the files the docs name: `./my-adapter` and `./style-adapter` (the
demo's shout adapter), `./other-adapter` (the demo's reverse adapter), `model.gguf` and
`~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf` (the demo model), `adapters_backend/demo/assets` (the demo
itself), `examples/` (a copy of the repository's). The Hugging Face Hub is tests/fixtures/fake_hub.py
holding OWNER/REPO (the demo's pirate adapter as a PEFT folder, blended at strength 1), a copy of it
named like a pirate adapter for `hub search "pirate"` to find, and OWNER/REPO-GGUF (the demo model as
its Q4_K_M and Q8_0 files); `hub login` is given the fake Hub's token on stdin.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures.fake_hub import TOKEN, FakeHub

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "adapters_backend" / "demo" / "assets"
DOCS = ["README.md"] + sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))
NOT_RUN = {"docs/packaging.md": "builds and installs the .deb: packaging/briefcase/build_linux_deb.py runs it"}

# (document, regular expression on the command, why it is not run here)
SKIPPED = [
    ("README.md", r"^loradeck chat --engine llama-server ",
     "needs a llama-server at host:8080; tests/remote/test_llama_server.py runs this engine against a real one"),
    ("README.md", r"^loradeck chat --engine (vllm|lorax) ",
     "needs a vLLM or LoRAX server (GPU); tests/remote/test_vllm_lorax.py runs these engines against protocol fakes"),
    ("docs/getting-started.md", r"^loradeck\s*(#|$)", "opens the desktop app (tests/gui covers it)"),
    ("docs/troubleshooting.md", r"^LORADECK_LLAMA_EXTRA_BUFFERS=[01] loradeck\s*(#|$)", "opens the desktop app"),
]
TIMEOUT = 180

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("curl") is None,
                                reason="the docs' commands are shell lines: running them needs bash and curl")


# ------------------------------------------------------------------------------------------ reading


@dataclass
class Command:
    doc: str
    line: int
    text: str
    shown: list[str] = field(default_factory=list)     # the `# …` output lines the docs show after it

    @property
    def tokens(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    @property
    def program(self) -> list[str]:
        """The words after any VAR=value assignments."""
        words = self.tokens
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        return words

    @property
    def kind(self) -> str:
        words = self.program
        if words[:3] == ["python3", "dev.py", "loradeck"] or words[:1] == ["loradeck"]:
            args = words[3:] if words[0] == "python3" else words[1:]
            return "serve" if args[:1] == ["serve"] else "loradeck"
        if words[:1] == ["curl"]:
            return "curl"
        if words[:1] in (["python"], ["python3"]) and len(words) > 1 and words[1].startswith("examples/"):
            return "python"
        pip = words[words.index("pip") + 1:] if "pip" in words[:3] else []
        if pip[:1] == ["install"] and any(w.startswith("./examples/") for w in pip):
            return "pip"
        return "other"


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:           # an open quote: the command goes on on the next line
        return False
    return True


def read_commands(doc: str) -> list[Command]:
    commands: list[Command] = []
    lines = (REPO / doc).read_text(encoding="utf-8").splitlines()
    fence = None
    pending: list[str] = []
    start = 0
    for n, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if fence is None:
            m = re.match(r"(\s*)```(sh|bash)\s*$", raw)
            if m:
                fence, pending = m.group(1), []
            continue
        if stripped.startswith("```"):
            fence = None
            continue
        line = raw[len(fence):] if raw.startswith(fence) else raw.lstrip()
        if not pending and line.lstrip().startswith("#"):
            if commands and commands[-1].doc == doc and commands[-1].line >= start:
                commands[-1].shown.append(line.lstrip()[1:].strip())
            continue
        if not pending:
            start = n
            if not line.strip():
                continue
        pending.append(line)
        text = "\n".join(pending)
        if _complete(text):
            commands.append(Command(doc, start, text.replace("\\\n", " ")))
            pending = []
    return commands


def skip_reason(cmd: Command) -> str | None:
    text = " ".join(cmd.program) if cmd.program else cmd.text
    for doc, pattern, why in SKIPPED:
        if doc == cmd.doc and re.search(pattern, cmd.text.strip()) or doc == cmd.doc and re.search(pattern, text):
            return why
    return None


def shows(output: str, shown: list[str]) -> bool:
    """Whether `output` holds every shown line, in order (whitespace runs as one space, … as anything)."""
    flat = " ".join(output.split())
    pos = 0
    for line in shown:
        for part in (" ".join(p.split()) for p in line.split("…")):
            if not part:
                continue
            at = flat.find(part, pos)
            if at < 0:
                return False
            pos = at + len(part)
    return True


# ------------------------------------------------------------------------------------------ running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shell_join(words: list[str]) -> str:
    """Quote for bash, leaving a leading ~/ to expand."""
    return " ".join("~/" + shlex.quote(w[2:]) if w.startswith("~/") else shlex.quote(w) for w in words)


def _loradeck_text(cmd: Command) -> str:
    return re.sub(r"\bpython3 dev\.py loradeck\b", "loradeck", cmd.text.strip())


class Server:
    """A `loradeck serve` the docs started, on a port of our choosing."""

    def __init__(self, cmd: Command, env: dict, cwd: Path):
        words = shlex.split(_loradeck_text(cmd), comments=True)
        if words[-1:] == ["&"]:
            words = words[:-1]
        self.doc_port = 8000
        self.port = _free_port()
        if "--port" in words:
            i = words.index("--port")
            self.doc_port, words[i + 1] = int(words[i + 1]), str(self.port)
        else:
            words += ["--port", str(self.port)]
        self.cmd = cmd
        self.proc = subprocess.Popen(["bash", "-c", "exec " + _shell_join(words)], cwd=cwd, env=env, text=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> bool:
        """The banner is out and the server answers (so Ctrl+C reaches the running server, as a user's would)."""
        import urllib.error
        import urllib.request
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            if "Ctrl+C stops" in self.output:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5):
                        return True
                except urllib.error.HTTPError:
                    return True
                except OSError:
                    pass
            time.sleep(0.1)
        return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)           # what Ctrl+C sends
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class UserFolder:
    """Where a document's commands run: its files, its environment, its server."""

    def __init__(self, root: Path, hub: FakeHub):
        self.cwd = root / "work"
        self.home = root / "home"
        (self.home / "models").mkdir(parents=True)
        self.cwd.mkdir()
        demo_model = DEMO / "model" / "tiny-deck-demo.gguf"
        (self.cwd / "adapters_backend" / "demo").mkdir(parents=True)
        (self.cwd / "adapters_backend" / "demo" / "assets").symlink_to(DEMO, target_is_directory=True)
        shutil.copytree(REPO / "examples", self.cwd / "examples",
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "sample-simple-lora"))
        shutil.copytree(DEMO / "adapters" / "shout-peft", self.cwd / "my-adapter")
        shutil.copytree(DEMO / "adapters" / "shout-peft", self.cwd / "style-adapter")
        shutil.copytree(DEMO / "adapters" / "reverse-ludwig", self.cwd / "other-adapter")
        (self.cwd / "model.gguf").symlink_to(demo_model)
        (self.home / "models" / "qwen2.5-0.5b-instruct-q4_k_m.gguf").symlink_to(demo_model)
        bin_dir = Path(sys.executable).parent
        path = os.environ.get("PATH", "")
        if not (bin_dir / "loradeck").exists():      # not installed: the same launcher through this Python
            shim = root / "bin"
            shim.mkdir()
            (shim / "loradeck").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m desktop_app.launcher "$@"\n')
            (shim / "loradeck").chmod(0o755)
            path = f"{shim}{os.pathsep}{path}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LORADECK_", "HF_", "HUGGING_FACE", "TRANSFORMERS_", "XDG_"))
               and k not in ("PYTHONPATH",)}
        env.update(PATH=f"{bin_dir}{os.pathsep}{path}", HOME=str(self.home), QT_QPA_PLATFORM="offscreen",
                   XDG_CONFIG_HOME=str(root / "config"), XDG_DATA_HOME=str(root / "share"),
                   XDG_CACHE_HOME=str(root / "cache"), LORADECK_DATA_DIR=str(root / "data"),
                   LORADECK_CACHE_DIR=str(root / "loradeck-cache"), HF_HOME=str(root / "hf"),
                   HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
        self.env = env
        self.server: Server | None = None
        self.stopped: list[Server] = []

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.stopped.append(self.server)
            self.server = None

    def run(self, cmd: Command) -> tuple[int, str]:
        """(exit status, output) of a command; a server's are its start (0 once ready) and banner."""
        kind = cmd.kind
        if kind == "serve":
            self.stop_server()
            self.server = Server(cmd, self.env, self.cwd)
            ready = self.server.wait_ready()
            out = self.server.output.replace(f":{self.server.port}", f":{self.server.doc_port}")
            return (0 if ready else self.server.proc.poll() or 1), out
        if kind == "pip":
            return self._pip(cmd)
        text = _loradeck_text(cmd)
        if kind == "curl":
            if self.server is None:
                return 1, "a curl example with no `loradeck serve` before it in this document"
            text = re.sub(r"(localhost|127\.0\.0\.1):\d+", f"127.0.0.1:{self.server.port}", text)
        if kind == "python":
            text = re.sub(r"^python3?\b", shlex.quote(sys.executable), text.strip())
        feed = TOKEN + "\n" if "hub login" in text and "--token" not in text else None
        done = subprocess.run(["bash", "-c", "set -o pipefail\n" + text], cwd=self.cwd, env=self.env, text=True,
                              input=feed, stdin=None if feed else subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=TIMEOUT)
        return done.returncode, done.stdout

    def _pip(self, cmd: Command) -> tuple[int, str]:
        words = cmd.program
        words = words[words.index("install") + 1:]
        target, sources = None, []
        it = iter(words)
        for w in it:
            if w == "--target":
                target = next(it)
            elif w.startswith("./examples/"):
                sources.append(w)
        if target is None:                               # "into the environment": one of the user folder's
            target = str(self.cwd.parent / "site")
            self.env["PYTHONPATH"] = target
        target = target.replace("~", str(self.home), 1) if target.startswith("~") else target
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                               "--no-deps", "--no-cache-dir", "--quiet", "--disable-pip-version-check",
                               "--target", target, *sources], cwd=self.cwd, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
        return done.returncode, done.stdout


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The fake Hub with the repositories the docs name."""
    from adapters_backend.merge.blend import blend
    src = tmp_path_factory.mktemp("hub-src")
    blend([(DEMO / "adapters" / "pirate-kohya.safetensors", 1.0)], src / "pirate")
    files = {p.name: p.read_bytes() for p in (src / "pirate").iterdir() if p.is_file()}
    card = {"base_model": "loradeck/tiny-deck-demo", "license": "apache-2.0", "library_name": "peft"}
    tags = ["peft", "lora", "safetensors", "base_model:adapter:loradeck/tiny-deck-demo", "license:apache-2.0"]
    fake = FakeHub().start()
    fake.add("OWNER/REPO", files, tags=tags, card=card, library_name="peft", downloads=10)
    fake.add("demo-org/pirate-lora", files, tags=tags, card=card, library_name="peft", downloads=5)
    model = (DEMO / "model" / "tiny-deck-demo.gguf").read_bytes()
    fake.add("OWNER/REPO-GGUF", {"model-Q4_K_M.gguf": model, "model-Q8_0.gguf": model, "README.md": b"# GGUF"},
             tags=["gguf", "base_model:quantized:loradeck/tiny-deck-demo"], downloads=3)
    yield fake
    fake.stop()


# ------------------------------------------------------------------------------------------ tests


def test_the_reader_finds_commands_outputs_and_continuations():
    cmds = {c.line: c for c in read_commands("docs/convert-and-merge.md")}
    convert = next(c for c in cmds.values() if c.program[:2] == ["loradeck", "convert"])
    assert convert.program[-2:] == ["-o", "pirate.gguf"] and convert.shown[0].startswith("wrote pirate.gguf")
    curls = [c for c in read_commands("docs/server.md") if c.kind == "curl"]
    assert curls and all('"temperature": 0' in c.text and c.shown for c in curls)
    assert shows("wrote  x: 5 tensors\n(rank 8)", ["wrote x: … (rank 8)"])
    assert not shows("wrote x", ["wrote y"]) and not shows("b a", ["a", "b"])


def test_every_skip_still_names_a_command():
    """A skip whose command left the docs must go too, so the list stays short and true."""
    for doc, pattern, _ in SKIPPED:
        assert any(skip_reason(c) for c in read_commands(doc) if re.search(pattern, c.text.strip())
                   or re.search(pattern, " ".join(c.program))), (doc, pattern)


RUN = [d for d in DOCS if d not in NOT_RUN and any(c.kind != "other" for c in read_commands(d))]


@pytest.mark.parametrize("doc", RUN)
def test_doc_commands(doc, hub, tmp_path):
    folder = UserFolder(tmp_path, hub)
    failures, ran = [], 0
    try:
        for cmd in read_commands(doc):
            if cmd.kind == "other" or skip_reason(cmd):
                continue
            ran += 1
            code, out = folder.run(cmd)
            if code != 0:
                failures.append(f"{doc}:{cmd.line}: `{cmd.text.strip()}` exited {code}:\n{out[-2000:]}")
            elif cmd.shown and not shows(out, cmd.shown):
                failures.append(f"{doc}:{cmd.line}: `{cmd.text.strip()}` printed\n{out[-2000:]}\n"
                                f"but the docs show\n" + "\n".join(cmd.shown))
    finally:
        folder.stop_server()
    for server in folder.stopped:
        if server.proc.returncode != 0 or "stopped" not in server.output:
            failures.append(f"{doc}:{server.cmd.line}: `{server.cmd.text.strip()}` did not stop cleanly on Ctrl+C "
                            f"(exit {server.proc.returncode}):\n{server.output[-2000:]}")
    assert ran, f"{doc}: no command was run"
    assert not failures, "\n\n".join(failures)
