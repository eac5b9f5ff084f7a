"""`python3 dev.py app` / `dev.py loradeck …` must stop on Ctrl+C (SIGINT) and SIGTERM sent to the
process the user started, leaving nothing running (issue #19: the app outlived dev.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")


@pytest.fixture(autouse=True)
def _dev_py_would_install_nothing(monkeypatch):
    """dev.py must find this test run's venv already set up, or it would pip-install into it."""
    monkeypatch.setenv("LORADECK_VENV", sys.prefix)
    stamps = list(Path(sys.prefix).glob(".loradeck-stamp-*"))
    if not stamps:
        pytest.skip(f"{sys.prefix} was not set up by dev.py")


def _start(args: list[str], tmp_path: Path, mark: str) -> subprocess.Popen:
    env = {**os.environ, "LORADECK_DATA_DIR": str(tmp_path / "data"), "LORADECK_CACHE_DIR": str(tmp_path / "cache"),
           "LORADECK_SETTINGS_DIR": str(tmp_path / "settings"), "QT_QPA_PLATFORM": "offscreen",
           "HF_HUB_OFFLINE": "1", "LORADECK_API_KEY": "", "DEV_SIGNAL_TEST_MARK": mark}
    return subprocess.Popen([sys.executable, str(REPO / "dev.py"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _marked(mark: str) -> list[psutil.Process]:
    """Every process started from this test's dev.py, orphans included (they inherit its environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DEV_SIGNAL_TEST_MARK") == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _wait_until(condition, what: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"dev.py ended ({proc.returncode}) before {what}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {timeout} s")
        time.sleep(0.2)


def _stop_and_check(proc: subprocess.Popen, sig: int, mark: str) -> int:
    try:
        assert _marked(mark), "the test cannot see the processes it started"
        os.kill(proc.pid, sig)                         # to the dev.py process only, as `kill PID` does
        status = proc.wait(60)
        deadline = time.monotonic() + 10
        while _marked(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [(p.pid, p.cmdline()) for p in _marked(mark) if p.is_running()]
        assert not survivors, f"still running after {signal.Signals(sig).name} to dev.py: {survivors}"
        return status
    finally:
        for p in _marked(mark):
            p.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_dev_py_stops_the_cli_server(tmp_path, sig):
    mark = uuid.uuid4().hex
    proc = _start(["loradeck", "serve", "--port", "0", "--n-ctx", "256", "--threads", "1"], tmp_path, mark)
    lines: list[str] = []

    def serving() -> bool:
        lines.append(proc.stdout.readline())
        return "OpenAI base URL" in lines[-1]

    _wait_until(serving, "server", proc)
    _stop_and_check(proc, sig, mark)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_dev_py_closes_the_app(tmp_path, sig):
    mark = uuid.uuid4().hex
    proc = _start(["app"], tmp_path, mark)
    # The library index is written once the window is painted and its state started.
    _wait_until(lambda: (tmp_path / "data/library/index.json").exists(), "started app", proc)
    assert _stop_and_check(proc, sig, mark) == 0, "the app did not close cleanly (status 0) on the signal"
