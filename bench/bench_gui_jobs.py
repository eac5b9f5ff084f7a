"""Stall measurements for the download and convert jobs (bench_gui.py); they need the Hub and convert
backends and the fake Hub test server."""
from __future__ import annotations


def download_stall(app, state, window, meter, wait_until) -> float:
    raise ImportError("the Hub backend is not installed yet")


def convert_stall(app, state, window, meter, wait_until) -> float:
    raise ImportError("the convert backend is not installed yet")
