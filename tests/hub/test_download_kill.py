"""A `loradeck hub download --install` process killed with SIGKILL at random moments: each time the
library stays valid and unchanged, and the next run resumes the partial file (Range request) and ends
with the exact bytes, installed once."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters_backend.library import Library

REPO = Path(__file__).resolve().parents[2]


def _partial_bytes() -> int:
    from huggingface_hub import constants
    return sum(p.stat().st_size for p in Path(constants.HF_HUB_CACHE).rglob("*.loradeck-partial"))


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_sigkill_during_download_then_resume(hub):
    files = hub.repos["alice/big-lora"].commits[-1][1]
    want = hashlib.sha256(files["adapter_model.safetensors"]).hexdigest()
    hub.throttle = 0.02                        # ~200 KB/s: the kills land inside the 2 MB file
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "adapters_backend.cli", "hub", "download", "alice/big-lora", "--install"]
    rng = random.Random(11)
    for _ in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not _partial_bytes() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)                   # wait until the weights file is arriving…
        time.sleep(rng.uniform(0.0, 1.0))      # …then kill at a random moment inside it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        lib = Library()
        assert not lib.problems and lib.list() == []            # nothing half-installed
    hub.throttle = 0.0
    hub.requests.clear()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ranges = [hd.get("range") or hd.get("Range") for m, p, hd in hub.requests
              if m == "GET" and p.endswith("adapter_model.safetensors")]
    assert ranges and ranges[0] and int(ranges[0][6:-1]) > 0      # resumed where a killed run stopped
    entries = Library().list()
    assert len(entries) == 1
    blob = (entries[0].path / "adapter_model.safetensors").resolve()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == want
