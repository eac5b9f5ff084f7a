"""The example plugin in examples/loradeck-example-plugin installs like any third-party package and works.

It is pip-installed (no network: --no-index, --no-deps, no build isolation) into a throwaway
target folder that is put on PYTHONPATH, the same way tests/backend/test_plugins.py puts its
hand-written distributions on sys.path; then the real `loradeck` command line must list it and
read its format with the right scales.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "loradeck-example-plugin"
DEMO_MODEL = REPO / "adapters_backend" / "demo" / "assets" / "model" / "tiny-deck-demo.gguf"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example plugin pip-installed into a fresh target folder (from a copy, so no build/ or
    egg-info lands in the repository)."""
    work = tmp_path_factory.mktemp("example-plugin")
    src = work / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                  "sample-simple-lora"))
    site = work / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
         "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    dist_info = list(site.glob("loradeck_simple_lora-*.dist-info"))
    assert dist_info, sorted(p.name for p in site.iterdir())
    assert "loradeck.plugins" in (dist_info[0] / "entry_points.txt").read_text()
    return site


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The adapter make_sample.py writes (rsLoRA, alpha 8, rank 4; one module with alpha 2)."""
    out = tmp_path_factory.mktemp("sample") / "sample-simple-lora"
    done = subprocess.run([sys.executable, str(EXAMPLE / "make_sample.py"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def loradeck(args: list[str], site: Path, cwd: Path, via: str = "PYTHONPATH") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env[via] = os.pathsep.join(p for p in (str(site), env.get(via, "")) if p)
    env.setdefault("LORADECK_CACHE_DIR", str(cwd / "cache"))
    env.setdefault("LORADECK_DATA_DIR", str(cwd / "data"))
    code = "import sys\nfrom desktop_app.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=180)


def test_plugins_command_lists_the_example(installed, tmp_path):
    out = loradeck(["plugins", "--json"], installed, tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    row = rows["simple-lora"]
    assert row["ok"], row["errors"]
    assert row["distribution"] == "loradeck-simple-lora" and row["version"] == "0.1.0"
    assert row["formats"] == ["simple-lora"] and row["title"] == "Simple LoRA (example plugin)"
    assert all(rows[n]["ok"] for n in ("architectures", "peft", "ludwig", "kohya", "gguf"))
    text = loradeck(["plugins"], installed, tmp_path)
    assert text.returncode == 0 and "simple-lora" in text.stdout


def test_plugin_path_finds_a_plugin_installed_with_pip_target(installed, sample, tmp_path):
    """LORADECK_PLUGIN_PATH (what docs/writing-a-plugin.md shows) works in a development install too,
    not only in the packaged app whose launcher reads it."""
    out = loradeck(["plugins", "--json"], installed, tmp_path, via="LORADECK_PLUGIN_PATH")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    assert rows["simple-lora"]["ok"] and rows["simple-lora"]["distribution"] == "loradeck-simple-lora"
    read = loradeck(["inspect", str(sample), "--json"], installed, tmp_path, via="LORADECK_PLUGIN_PATH")
    assert read.returncode == 0 and json.loads(read.stdout)["format"] == "simple-lora"


def test_inspect_reads_the_example_format(installed, sample, tmp_path):
    out = loradeck(["inspect", str(sample), "--json"], installed, tmp_path)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["format"] == "simple-lora" and info["variants"] == ["lora"]
    assert info["base_model"] == "loradeck/tiny-deck-demo" and info["architecture"] == "llama"
    assert info["module_count"] == 8 and info["layers"] == [0, 1, 2, 3]
    assert info["target_modules"] == ["q_proj", "v_proj"] and info["rank"] == 4
    mods = {m["name"]: m for m in info["modules"]}
    assert len(mods) == 8
    # rsLoRA: alpha / sqrt(rank) = 8 / 2 = 4; the per-module alpha 2 gives 1.
    for name, m in mods.items():
        expected_alpha = 2.0 if name == "model.layers.3.self_attn.v_proj" else 8.0
        assert m["alpha"] == expected_alpha, name
        assert math.isclose(m["scale"], expected_alpha / math.sqrt(4)), (name, m["scale"])
        assert m["shape"] == [128, 128] and m["variant"] == "lora" and m["dtype"] == "F32"
    assert info["scale"] == {"min": 1.0, "max": 4.0, "distinct": 2}
    # The same file through the JSON config itself.
    again = loradeck(["inspect", str(sample / "simple_lora.json"), "--json"], installed, tmp_path)
    assert again.returncode == 0 and json.loads(again.stdout)["module_count"] == 8


def test_the_example_adapter_fits_the_demo_model_and_converts(installed, sample, tmp_path):
    check = loradeck(["check", str(sample), "--base", str(DEMO_MODEL)], installed, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    out_gguf = tmp_path / "sample.gguf"
    conv = loradeck(["convert", str(sample), "--base", str(DEMO_MODEL), "-o", str(out_gguf)], installed, tmp_path)
    assert conv.returncode == 0, conv.stderr
    assert out_gguf.stat().st_size > 0
    # The written LoRA GGUF reads back through the built-in gguf plugin.
    back = loradeck(["inspect", str(out_gguf), "--json"], installed, tmp_path)
    assert back.returncode == 0 and json.loads(back.stdout)["module_count"] == 8


def test_in_process_delta_matches_the_format_definition(installed, sample, monkeypatch):
    """ΔW = scale · up @ down, read through LoRA Deck's registry like the app does."""
    from adapters_backend.formats.registry import read_adapter
    from adapters_backend.formats.safetensors_io import SafetensorsSource
    from adapters_backend.plugins.manager import discover, reset_default_registry

    monkeypatch.syspath_prepend(str(installed))
    importlib.invalidate_caches()
    reset_default_registry()
    try:
        registry = discover()
        adapter = read_adapter(sample, registry=registry)
        assert adapter.format_id == "simple-lora"
        raw = SafetensorsSource(sample / "simple_lora.safetensors")
        name = "model.layers.3.self_attn.v_proj"
        mod = adapter.modules[name]
        t = adapter.tensors(mod)
        np.testing.assert_array_equal(t["A"], raw.read(f"{name}.down"))
        np.testing.assert_array_equal(t["B"], raw.read(f"{name}.up"))
        assert mod.scale == 1.0 and mod.extra["rslora"] is True
    finally:
        reset_default_registry()
        for m in [m for m in sys.modules if m.startswith("loradeck_simple_lora")]:
            del sys.modules[m]


def test_bad_files_give_a_clean_error(installed, sample, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(sample, broken)
    (broken / "simple_lora.safetensors").unlink()
    out = loradeck(["inspect", str(broken)], installed, tmp_path)
    assert out.returncode == 2 and "simple_lora.safetensors" in out.stderr and "Traceback" not in out.stderr
    (broken / "simple_lora.json").write_text('{"simple_lora": 2}')
    out = loradeck(["inspect", str(broken)], installed, tmp_path)
    assert out.returncode == 2 and '"simple_lora": 1' in out.stderr
