"""The live half of bench_gui.py: event-loop stalls and streaming speed in a running app.

Measured in one process with the real main window on the demo model (temporary data folders):
- stall: a 5 ms QTimer on the GUI thread; the longest gap between its ticks beyond 5 ms while a job
  runs is the longest time the window could not react;
- stream: tokens/s as the chat view receives them ÷ tokens/s of the same engine run directly (same
  model, mix, prompts and seed), both from the request to the last token (a reply can be shorter
  than the GUI's event latency, so "first to last token" is not measurable on the GUI side).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK_MS = 5
GOAL_STALL_MS, GOAL_STREAM = 50.0, 0.97
PROMPTS = ["Tell me a joke.", "What is a LoRA adapter?", "What does a cow say?"]


class StallMeter:
    """Longest gap between ticks of a TICK_MS timer, beyond TICK_MS, while `measuring`."""

    def __init__(self):
        from PySide6.QtCore import QTimer
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.worst = 0.0
        self.measuring = False

    def _tick(self):
        now = time.perf_counter()
        if self.measuring and self.last is not None:
            self.worst = max(self.worst, (now - self.last) * 1000 - TICK_MS)
        self.last = now

    def begin(self):
        self.worst, self.last, self.measuring = 0.0, None, True
        self.timer.start()

    def end(self) -> float:
        self.measuring = False
        self.timer.stop()
        return self.worst


def wait_until(app, cond, timeout=120.0):
    """Run the event loop until cond() is true (checked every 5 ms by a timer)."""
    from PySide6.QtCore import QEventLoop, QTimer
    if cond():
        return
    loop = QEventLoop()
    end = time.monotonic() + timeout
    timed_out = []

    def check():
        if cond():
            loop.quit()
        elif time.monotonic() > end:
            timed_out.append(True)
            loop.quit()

    poll = QTimer()
    poll.setInterval(5)
    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    if timed_out:
        raise TimeoutError("timed out")


def _direct_rate(settings, model_path, mix, params, prompts) -> tuple[int, float]:
    from adapters_backend.engines.base import ChatMessage as message_cls
    from adapters_backend.engines.base import SamplingParams as params_cls
    from adapters_backend.jobs import JobContext
    from desktop_app.workers.engine_host import default_engine_factory

    engine = default_engine_factory("llama.cpp", settings.engine_options())
    engine.load(model_path, JobContext())
    engine.set_adapters(list(mix))
    n_total, t_total = 0, 0.0
    try:
        for _chunk in engine.generate([message_cls(role="user", content="Hello!")], params_cls(**params),
                                      JobContext()):
            pass                                  # warm-up, as the GUI run had
        for p in prompts:
            n, last = 0, None
            start = time.perf_counter()
            for chunk in engine.generate([message_cls(role="user", content=p)], params_cls(**params), JobContext()):
                n += getattr(chunk, "n_tokens", None) or 1
                last = time.perf_counter()
            if last is not None:
                n_total += n
                t_total += last - start
    finally:
        engine.close()
    return n_total, t_total


def run_live(only: set[str], tokens: int):
    tmp = tempfile.mkdtemp(prefix="loradeck-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)    # the app's data, cache and settings
    for name in ("LORADECK_DATA_DIR", "LORADECK_CACHE_DIR", "LORADECK_SETTINGS_DIR"):
        os.environ[name] = str(Path(tmp) / name.lower())
    from desktop_app.app import build_main_window, create_app

    app = create_app(sys.argv[:1])
    state, window = build_main_window()
    state.errors.show_dialogs = False
    window.show()
    window.start()
    wait_until(app, lambda: state.model is not None or state.errors.history, 120)
    if state.model is None:
        yield f"live benchmarks skipped: the demo model did not load ({state.errors.history})", True
        return
    meter = StallMeter()
    chat = window.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(tokens)
    chat.sampling.seed.setValue(1)
    # A model of realistic size with one rank-16 adapter on every linear layer (see make_bench_model.py).
    from make_bench_model import bench_files  # noqa: PLC0415

    from adapters_backend.mix_presets import MixEntry  # noqa: PLC0415
    model_file, lora_file = bench_files()
    state.load_model(str(model_file), "llama.cpp", label="Benchmark model")
    wait_until(app, lambda: state.model is not None and state.model.path == str(model_file), 300)
    state.mix_model.replace_all([MixEntry("bench-lora", "bench LoRA r16", str(lora_file), 1.0, True)])
    # Warm up (first generation builds graphs; the adapter file is loaded once).
    chat.prompt.setPlainText("Hello!")
    chat.send()
    wait_until(app, lambda: not chat.generating)

    if "stall" in only or "stream" in only:
        n_gui, t_gui = 0, 0.0
        meter.begin()
        for p in PROMPTS:
            chat.new_chat()                       # one question per chat: the same work as the direct run
            chat.prompt.setPlainText(p)
            chat.send()
            wait_until(app, lambda: not chat.generating)
            if chat._arrival.t_last is not None:
                n_gui += chat._arrival.tokens
                t_gui += chat._arrival.t_last - chat._t_request
        stall = meter.end()
        if "stall" in only:
            yield (f"longest GUI stall while generating: {stall:.1f} ms (goal ≤ {GOAL_STALL_MS:.0f}) "
                   f"{'OK' if stall <= GOAL_STALL_MS else 'MISSED'}"), stall <= GOAL_STALL_MS
        params = chat.sampling.params()
        model_path, mix, settings = state.model.path, state.engine_mix(), state.settings

    if "stall" in only:
        from bench_gui_jobs import convert_stall, download_stall  # noqa: PLC0415
        for label, fn in (("downloading", download_stall), ("converting", convert_stall)):
            try:
                stall = fn(app, state, window, meter, wait_until)
            except ImportError as exc:
                yield f"GUI stall while {label}: skipped ({exc})", True
                continue
            yield (f"longest GUI stall while {label}: {stall:.1f} ms (goal ≤ {GOAL_STALL_MS:.0f}) "
                   f"{'OK' if stall <= GOAL_STALL_MS else 'MISSED'}"), stall <= GOAL_STALL_MS
    window.close()

    if "stream" in only:
        # The engine alone, after the app has closed its engine thread: llama.cpp's OpenMP worker
        # teams spin-wait, so a second team alive on a 2-core machine would slow this run down.
        n_dir, t_dir = _direct_rate(settings, model_path, mix, params, PROMPTS)
        gui_rate, dir_rate = n_gui / t_gui, n_dir / t_dir
        ratio = gui_rate / dir_rate
        yield (f"streamed tokens/s (request to last token, {n_gui} tokens): GUI {gui_rate:.0f}, engine alone "
               f"{dir_rate:.0f}, ratio {ratio:.3f} (goal ≥ {GOAL_STREAM}) {'OK' if ratio >= GOAL_STREAM else 'MISSED'}"), \
            ratio >= GOAL_STREAM
