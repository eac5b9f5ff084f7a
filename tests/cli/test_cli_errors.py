"""The command line's error contract: one line on stderr, exit 2 for an error, 3 for an adapter that
does not fit the base (every command, as `check`), no traceback for anything a user can cause, and
a quiet stop when the reader of its output goes away (`loradeck … | head`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.fake_hub import TOKEN, fake_hub  # noqa: F401  (pytest fixture)
from fixtures.small_adapters import write_peft

from adapters_backend.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "adapters_backend" / "demo" / "assets"
MODEL = DEMO / "model" / "tiny-deck-demo.gguf"
SHOUT = DEMO / "adapters" / "shout-peft"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def misfit(tmp_path):
    """A PEFT adapter for a Llama of hidden size 64 (the demo model's is 128)."""
    return write_peft(tmp_path / "misfit", hidden=64)


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))


@pytest.mark.parametrize("command", ["check", "convert", "merge", "blend", "chat"])
def test_an_adapter_that_does_not_fit_exits_3_on_every_command(command, misfit, tmp_path, capsys):
    argv = {
        "check": ["check", misfit, "--base", MODEL],
        "convert": ["convert", misfit, "--base", MODEL, "-o", tmp_path / "out.gguf"],
        "merge": ["merge", "--base", MODEL, "--adapter", misfit, "-o", tmp_path / "out.gguf"],
        "blend": ["blend", f"{SHOUT}:1", f"{misfit}:0.5", "--base", MODEL, "-o", tmp_path / "out"],
        "chat": ["chat", "--model", MODEL, "--adapter", misfit, "--prompt", "hi"],
    }[command]
    code, out, err = run(capsys, *argv)
    assert code == 3, (out, err)
    assert "hidden size 64" in out + err and "Traceback" not in err
    if command != "check":
        who = misfit.name if command == "chat" else misfit      # the engine names adapters as the mix does
        assert err.startswith(f"loradeck: error: {who} does not fit tiny-deck-demo.gguf: incompatible")
        assert "  mismatch: model.layers.0.self_attn.q_proj: shape" in err
        assert not (tmp_path / "out.gguf").exists() and not (tmp_path / "out").exists()


def test_other_errors_exit_2_in_one_line(tmp_path, capsys):
    for argv in (["convert", tmp_path / "nope", "--base", MODEL],
                 ["blend", f"{SHOUT}:1", "-o", tmp_path / "b", "--rank", "0"],
                 ["merge", "--base", MODEL, "--adapter", f"{tmp_path / 'gone'}:0.5", "-o", tmp_path / "m.gguf"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and err.startswith("loradeck: error: ") and err.count("\n") == 1, (argv, err)


def test_gguf_inputs_that_are_not_adapters(tmp_path, capsys):
    """A truncated LoRA GGUF says so; a GGUF model given as an adapter says it is a model."""
    data = (DEMO / "lora-gguf" / "pirate.gguf").read_bytes()
    cut_data, cut_header = tmp_path / "cut-data.gguf", tmp_path / "cut-header.gguf"
    cut_data.write_bytes(data[: len(data) // 2])
    cut_header.write_bytes(data[:3000])
    for bad, says in ((cut_data, "the file is truncated"), (cut_header, "the file is truncated"),
                      (MODEL, "is a GGUF file but a model, not a LoRA adapter")):
        for argv in (["inspect", bad], ["check", bad, "--base", MODEL], ["library", "install", bad],
                     ["chat", "--model", MODEL, "--adapter", bad, "--prompt", "hi"]):
            code, out, err = run(capsys, *argv)
            assert code == 2 and err.startswith(f"loradeck: error: {bad}: ") and says in err, (argv, err)
            assert err.count("\n") == 1


def test_hub_login(fake_hub, monkeypatch, capsys):
    code, out, err = run(capsys, "hub", "login", "--token", TOKEN)
    assert code == 0 and out == "token stored; logged in as tester\n"
    code, out, err = run(capsys, "hub", "login", "--token", "hf_wrong")
    assert code == 2 and "the Hub rejected this token" in err and err.count("\n") == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run(capsys, "hub", "login", "--token", TOKEN)
    assert code == 2 and "HF_HUB_OFFLINE is set" in err and err.count("\n") == 1


def test_hub_login_without_a_network(fake_hub, monkeypatch, capsys):
    fake_hub.stop()                        # nothing answers at the endpoint any more
    from adapters_backend.hub import reach
    reach.retry()
    code, out, err = run(capsys, "hub", "login", "--token", TOKEN)
    assert code == 2 and "Can't reach the Hugging Face Hub" in err and err.count("\n") == 1


def _run_with_closed_stdout(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python `code` with stdout a pipe nobody reads any more (what `| head` leaves behind)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-c", code, *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120, cwd=REPO)
    finally:
        os.close(write_end)


CLI = "import sys\nfrom adapters_backend.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def test_output_cut_short_by_the_reader_ends_quietly():
    done = _run_with_closed_stdout(CLI, "inspect", str(SHOUT), "--json")
    assert done.returncode == 141 and done.stderr == ""


def test_a_broken_pipe_elsewhere_is_not_mistaken_for_the_reader_leaving():
    """Only stdout's own reader going away is quiet: any other BrokenPipeError is a bug and shows."""
    code = ("import sys\nfrom adapters_backend.cli import inspect_cmd\n"
            "def boom(args):\n    raise BrokenPipeError(32, 'Broken pipe (a socket)')\n"
            "inspect_cmd.run = boom\n" + CLI)
    done = subprocess.run([sys.executable, "-c", code, "inspect", str(SHOUT)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 1 and "BrokenPipeError: [Errno 32] Broken pipe (a socket)" in done.stderr
