"""`loradeck serve` from the command line: refuses a non-loopback address without --allow-remote,
prints its address, answers the openai client, and stops cleanly on Ctrl+C."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import openai
import pytest
from serve_testlib import ask, raw

from adapters_backend.cli.main import main
from adapters_backend.serve.runner import is_loopback


def test_loopback_detection():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.org"))


def test_remote_address_needs_allow_remote(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err and "0.0.0.0" in err


def test_malformed_allow_origin_is_one_line_error(capsys):
    for bad in ("localhost:3000", "http://example.org/app", "http://user@example.org", "http://x:99999"):
        assert main(["serve", "--allow-origin", bad, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert "--allow-origin" in err and "http://localhost:3000" in err and "Traceback" not in err


def test_missing_model_is_one_line_error(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "nope.gguf"), "--port", "0"]) == 2
    assert "no such model file" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform.startswith("win"), reason="sends SIGINT")
def test_serve_command_end_to_end(tmp_path):
    env = {**os.environ, "LORADECK_DATA_DIR": str(tmp_path / "data"), "LORADECK_CACHE_DIR": str(tmp_path / "cache"),
           "LORADECK_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "adapters_backend.cli", "serve", "--port", "0", "--n-ctx", "1024",
                             "--threads", "1", "--allow-origin", "http://localhost:5173"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"OpenAI base URL: (http://127\.0\.0\.1:\d+/v1)", line)
            if m:
                break
        assert m, "".join(lines) + proc.stderr.read() if proc.poll() is not None else "".join(lines)
        # The demo model was trained on 512-token contexts: the server says so where it says where it listens.
        assert "(context 512 tokens, CPU)" in lines[-3] or "(context 512 tokens, GPU)" in lines[-3]
        assert lines[-2].startswith("  note: The context is 512 tokens, not the 1,024 asked for")
        with openai.OpenAI(base_url=m.group(1), api_key="unused", max_retries=0, timeout=60) as c:
            assert "Paris" in ask(c)
            assert "SHOUT" not in ask(c) and ask(c, content="<lora:shout:1>What is the capital of France?").isupper()
        # --allow-origin reaches the server: that page gets CORS, any other page and a rebinding Host do not.
        base = m.group(1)[:-len("/v1")]
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        status, headers, _ = raw(base, "OPTIONS", "/v1/chat/completions", None,
                                 {"Origin": "http://localhost:5173", **preflight})
        assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:5173"
        assert raw(base, "OPTIONS", "/v1/chat/completions", None, {"Origin": "https://evil.example", **preflight})[0] == 403
        assert raw(base, "GET", "/v1/models", None, {"Host": "evil.example"})[0] == 403
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
