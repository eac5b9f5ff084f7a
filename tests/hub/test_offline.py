"""Offline is recognised in seconds: with an endpoint that black-holes (a full listen backlog, a server
that accepts and never answers, a name resolver that hangs) or HF_HUB_OFFLINE=1, Hub calls say so in
under ~3 s with a message for users, later calls of the same command fail at once, warnings print
once, and a repository already in the HF cache can still be shown."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fixtures.black_holes import full_backlog, hanging_resolver, silent_server  # noqa: F401  (fixtures)

from adapters_backend import hub as h
from adapters_backend.errors import HubOfflineError
from adapters_backend.hub import reach
from adapters_backend.hub.client import OFFLINE_HINT, OFFLINE_SETTING_HINT

REPO = "alice/tiny-style-lora"
DEADLINE = 3.5          # the probe gives up after 2.5 s; the rest is slack for a loaded test machine


def point_at(monkeypatch, url: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", url)
    reach.retry()


def timed(fn, *args, **kwargs):
    t0 = time.monotonic()
    try:
        return fn(*args, **kwargs), time.monotonic() - t0
    except Exception as exc:  # noqa: BLE001 - returned for the test to look at
        return exc, time.monotonic() - t0


@pytest.mark.parametrize("dead", ["full_backlog", "silent_server", "hanging_resolver"])
def test_black_holed_hub_is_offline_in_seconds_then_at_once(hub, monkeypatch, request, dead):
    h.install_from_hub(REPO)                          # in the cache now
    point_at(monkeypatch, request.getfixturevalue(dead))
    err, first = timed(h.search, "style")
    assert isinstance(err, HubOfflineError) and str(err) == OFFLINE_HINT, err
    assert first < DEADLINE, first
    # The rest of the command does not wait again: no second probe, no retries.
    err, second = timed(h.repo_details, "bob/wide-lora")
    assert isinstance(err, HubOfflineError) and OFFLINE_HINT in str(err) and second < 0.3, (err, second)
    err, _ = timed(h.install_from_hub, "bob/wide-lora")
    assert isinstance(err, HubOfflineError) and "never downloaded" in str(err)
    # What was downloaded before still works, and is shown from the cache.
    d, took = timed(h.repo_details, REPO, base=hub.base_dir)
    assert not isinstance(d, Exception), d
    assert d.from_cache and OFFLINE_HINT in d.note and took < 1.0
    assert d.compat["verdict"] == "compatible" and d.rank == 8 and d.license == "apache-2.0"
    assert {f["name"] for f in d.files} == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    e, took = timed(h.install_from_hub, REPO)
    assert e.source.startswith(f"hub:{REPO}@") and took < 1.0
    # A retry (the app's Search button) finds the Hub once it is back.
    point_at(monkeypatch, hub.url)
    assert [r.repo_id for r in h.search("style")] == [REPO]


def test_hf_hub_offline_is_immediate_and_says_so(hub, monkeypatch):
    h.install_from_hub(REPO)
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err, took = timed(h.search, "style")
    assert isinstance(err, HubOfflineError) and str(err) == OFFLINE_SETTING_HINT and took < 0.3
    d, took = timed(h.repo_details, REPO, base=hub.base_dir)
    assert d.from_cache and d.compat["verdict"] == "compatible" and took < 1.0
    assert hub.requests == []                          # not even a probe


def test_reachable_hub_is_probed_once_per_command(hub):
    h.search("style")
    h.repo_details(REPO)
    h.install_from_hub(REPO)
    probes = [p for m, p, _ in hub.requests if m == "HEAD" and p == "/"]
    assert len(probes) == 1


def _cli(hub, tmp_path, *args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LORADECK_"))}
    env.update({"HF_HOME": os.environ["HF_HOME"], "HF_HUB_DISABLE_XET": "1", "HF_ENDPOINT": hub.url,
                "LORADECK_DATA_DIR": os.environ["LORADECK_DATA_DIR"],
                "LORADECK_CACHE_DIR": os.environ["LORADECK_CACHE_DIR"], **(env_extra or {})})
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "adapters_backend.cli", *args], capture_output=True, text=True,
                       env=env, timeout=120)
    return p, time.monotonic() - t0


def test_cli_offline_in_seconds_with_one_line_and_cached_show(hub, tmp_path, full_backlog):
    h.install_from_hub(REPO)
    base = time.monotonic()
    subprocess.run([sys.executable, "-c", "import adapters_backend.cli.main"], check=True)
    startup = time.monotonic() - base                    # what the interpreter and imports cost here
    p, took = _cli(hub, tmp_path, "hub", "search", "style", env_extra={"HF_ENDPOINT": full_backlog})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"loradeck: error: {OFFLINE_HINT}"], p.stderr
    assert took < startup + DEADLINE + 1.5, (took, startup)
    p, took = _cli(hub, tmp_path, "hub", "show", REPO, "--base", str(hub.base_dir),
                   env_extra={"HF_ENDPOINT": full_backlog})
    assert p.returncode == 0, p.stderr
    assert p.stderr.count(OFFLINE_HINT) == 1 and "from the local cache" in p.stdout
    assert "verdict: compatible" in p.stdout and "apache-2.0" in p.stdout
    assert took < startup + DEADLINE + 3, (took, startup)
    p, _ = _cli(hub, tmp_path, "hub", "show", REPO, env_extra={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0 and OFFLINE_SETTING_HINT in p.stderr and "adapter_config.json" in p.stdout


def test_cli_prints_each_retry_warning_once(hub, tmp_path):
    hub.hang_up[f"/api/models/{REPO}"] = 1               # one dropped connection, then fine
    p, _ = _cli(hub, tmp_path, "hub", "show", REPO)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len([ln for ln in lines if "Retrying in" in ln]) == 1, p.stderr
    assert len(lines) == len(set(lines)), p.stderr
