"""Stall measurements for the download and convert jobs (bench_gui.py): the app's own code paths (the Hub
browser's download-and-install, the convert dialog's tools_access.convert job) against the loopback
fake Hub of the tests and the demo adapters."""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _scratch() -> Path:
    """A temporary folder removed when the benchmark ends."""
    folder = tempfile.mkdtemp(prefix="loradeck-bench-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder)


def _loopback_hub():
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from fixtures.fake_hub import FakeHub
        from fixtures.small_adapters import write_peft
        from huggingface_hub import constants
    except ImportError as exc:
        raise ImportError(f"the fake Hub test server or huggingface_hub is missing ({exc})") from None
    hub = FakeHub().start()
    # ~8 MB: long enough to measure, throttled a little so the download lasts a few seconds.
    folder = write_peft(_scratch() / "big", hidden=256, layers=8, r=128,
                        targets=("q_proj", "o_proj"), seed=1)
    hub.add("bench/big-lora", {p.name: p.read_bytes() for p in folder.iterdir()}, tags=["peft", "lora"],
            library_name="peft")
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ.pop("HF_HUB_OFFLINE", None)
    constants.ENDPOINT = hub.url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_OFFLINE = False
    constants.DOWNLOAD_CHUNK_SIZE = 64 * 1024
    return hub


def download_stall(app, state, window, meter, wait_until) -> float:
    hub = _loopback_hub()
    try:
        hub.throttle = 0.0005
        view = window.show_view("hub")
        meter.begin()
        act = view.start_adapter_download("bench/big-lora")
        wait_until(app, lambda: act.state != "running", 300)
        stall = meter.end()
        if act.state != "done":
            raise RuntimeError(f"the benchmark download failed: {act.error}")
        return stall
    finally:
        hub.stop()


def convert_stall(app, state, window, meter, wait_until) -> float:
    from adapters_backend import demo
    from desktop_app import tools_access
    out = _scratch() / "converted.gguf"
    src = next(a.path for a in demo.demo_adapters() if a.format == "peft")
    meter.begin()
    done = []
    # Several conversions in a row, through the job runner as the Convert dialog runs them.
    for i in range(5):
        job = state.jobs.start(tools_access.convert, str(src), str(out.with_name(f"c{i}.gguf")),
                               str(demo.demo_model_path()), "f32", False)
        job.signals.finished.connect(lambda: done.append(1))
        wait_until(app, lambda n=i + 1: len(done) >= n, 300)
    return meter.end()
