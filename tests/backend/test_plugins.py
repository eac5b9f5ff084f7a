"""The plugin system: entry-point discovery, lazy loading, fault isolation, duplicates."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from adapters_backend.errors import AdapterFormatError, PluginLoadError
from adapters_backend.formats.registry import detect, read_adapter
from adapters_backend.plugins.manager import GROUP, discover, reset_default_registry

REPO = Path(__file__).resolve().parents[2]
BUILTIN = {"architectures", "peft", "ludwig", "kohya", "gguf"}


def make_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str],
                      files: dict[str, str]) -> None:
    """Write an installed distribution (package files + dist-info with entry points) into `site`."""
    for rel, text in files.items():
        p = site / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{eps}\n")


# A complete third-party format plugin: ".acme" files are JSON with inline A/B factors.
ACME_INIT = '''
    MANIFEST = {
        "name": "ACME toy format",
        "formats": [{"id": "acme.toy", "name": "ACME toy", "sniff": "acme_toy.reader:sniff",
                     "read": "acme_toy.reader:read"}],
    }
'''
ACME_READER = '''
    import json
    import numpy as np
    from adapters_backend.core.adapter import Adapter, ModuleDelta
    from adapters_backend.formats.safetensors_io import DictSource

    def sniff(path):
        if not path.is_file():
            return 0.0
        with open(path, "rb") as f:
            return 0.9 if f.read(8) == b'{"acme":' else 0.0

    def read(path, base=None):
        data = json.loads(path.read_text())
        a, b = np.array(data["A"], np.float32), np.array(data["B"], np.float32)
        mod = ModuleDelta(name=data["module"], variant="lora", out_features=b.shape[0], in_features=a.shape[1],
                          rank=a.shape[0], alpha=float(data["alpha"]), scale=data["alpha"] / a.shape[0],
                          roles={"A": "a", "B": "b"})
        return Adapter(path=path, format_id="acme.toy", modules={mod.name: mod},
                       source=DictSource({"a": a, "b": b}))
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A throwaway site-packages folder on sys.path; the default registry is rebuilt around it."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    reset_default_registry()
    yield site
    reset_default_registry()
    for name in [m for m in sys.modules if m.startswith(("acme_", "broken_", "hostile_"))]:
        del sys.modules[name]


def test_builtin_plugins_register_through_entry_points():
    registry = discover()
    names = {p.name for p in registry.plugins}
    assert BUILTIN <= names
    for p in registry.plugins:
        if p.name in BUILTIN:
            assert p.distribution == "loradeck" and p.version, p
            assert p.ok, p.errors
    assert {"peft", "ludwig", "kohya", "gguf"} <= set(registry.formats)
    assert {"llama", "phi3", "gpt2", "bloom", "command-r"} <= set(registry.architectures)


def test_third_party_plugin_distribution_appears_and_reads(site, tmp_path):
    make_distribution(site, "acme-toy", "0.3.1", {"acme": "acme_toy:MANIFEST"},
                      {"acme_toy/__init__.py": ACME_INIT, "acme_toy/reader.py": ACME_READER})
    registry = discover()
    rec = next(p for p in registry.plugins if p.name == "acme")
    assert rec.ok and rec.distribution == "acme-toy" and rec.version == "0.3.1"
    assert "acme.toy" in registry.formats
    # Discovery imported the manifest only, not the reader.
    assert "acme_toy.reader" not in sys.modules

    f = tmp_path / "x.adapter"
    f.write_text(json.dumps({"acme": 1, "module": "model.layers.0.mlp.up_proj", "alpha": 4,
                             "A": [[1, 2, 3]], "B": [[1], [0]]}))
    assert detect(f, registry)[0] == (0.9, "acme.toy")
    adapter = read_adapter(f, registry=registry)
    mod = adapter.modules["model.layers.0.mlp.up_proj"]
    assert (mod.rank, mod.out_features, mod.in_features, mod.scale) == (1, 2, 3, 4.0)
    np.testing.assert_array_equal(adapter.tensors(mod)["A"], [[1, 2, 3]])


def test_broken_plugins_are_reported_and_skipped(site, tmp_path):
    make_distribution(site, "broken-import", "1.0", {"badimport": "broken_import:MANIFEST"},
                      {"broken_import/__init__.py": "raise RuntimeError('boom at import')\n"})
    make_distribution(site, "broken-exit", "1.0", {"badexit": "broken_exit:MANIFEST"},
                      {"broken_exit/__init__.py": "import sys\nsys.exit(3)\n"})
    make_distribution(site, "broken-manifest", "1.0", {"badmanifest": "broken_manifest:MANIFEST"},
                      {"broken_manifest/__init__.py": "MANIFEST = {'name': 'x', 'formats': [{'id': 'Bad Id!'}]}\n"})
    make_distribution(site, "broken-missing", "1.0", {"badmissing": "broken_missing:MANIFEST"},
                      {"broken_missing/__init__.py": "NOT_A_MANIFEST = 1\n"})
    make_distribution(site, "broken-dup", "1.0", {"baddup": "broken_dup:MANIFEST"},
                      {"broken_dup/__init__.py": "MANIFEST = {'name': 'dup', 'formats': [{'id': 'peft', "
                                                 "'name': 'x', 'sniff': 'broken_dup:s', 'read': 'broken_dup:r'}]}\n"})
    make_distribution(site, "broken-sniff", "1.0", {"badsniff": "broken_sniff:MANIFEST"},
                      {"broken_sniff/__init__.py": "MANIFEST = {'name': 'bs', 'formats': [{'id': 'bad.sniff', "
                                                   "'name': 'x', 'sniff': 'broken_sniff:sniff', "
                                                   "'read': 'broken_sniff:nothing'}]}\n"
                                                   "def sniff(path):\n    raise ZeroDivisionError('sniff bug')\n"})
    registry = discover()
    by_name = {p.name: p for p in registry.plugins}
    assert "boom at import" in by_name["badimport"].errors[0]
    assert "SystemExit" in by_name["badexit"].errors[0]
    assert "bad manifest" in by_name["badmanifest"].errors[0]
    assert "AttributeError" in by_name["badmissing"].errors[0]
    dup = by_name["baddup"].errors[0]
    assert "format id 'peft'" in dup and "'peft'" in dup and "baddup" in dup
    assert registry.formats["peft"][1].name == "peft"        # the first provider keeps it
    # Built-ins still fine.
    assert all(by_name[n].ok for n in BUILTIN)
    # A plugin that raises when called is recorded and skipped; detection still works for others.
    f = tmp_path / "junk.bin"
    f.write_bytes(b"\0" * 64)
    assert detect(f, registry) == []
    assert any("sniff bug" in e for e in by_name["badsniff"].errors)
    with pytest.raises(PluginLoadError, match="badsniff"):
        registry.format_function("bad.sniff", "read")
    with pytest.raises(AdapterFormatError, match="not a recognised adapter"):
        read_adapter(f, registry=registry)


def _run_cli(args, extra_path=None):
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "adapters_backend.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_plugins_command_lists_broken_plugin_and_keeps_working(site):
    make_distribution(site, "broken-import", "2.0", {"badimport": "broken_import:MANIFEST"},
                      {"broken_import/__init__.py": "import does_not_exist_anywhere\n"})
    out = _run_cli(["plugins", "--json"], extra_path=site)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    assert not rows["badimport"]["ok"] and "does_not_exist_anywhere" in rows["badimport"]["errors"][0]
    assert rows["badimport"]["version"] == "2.0"
    assert rows["peft"]["ok"] and rows["peft"]["formats"] == ["peft"]
    text = _run_cli(["plugins"], extra_path=site)
    assert text.returncode == 0 and "BROKEN" in text.stdout and "badimport" in text.stdout


def test_discovery_and_cli_start_without_torch_or_qt():
    code = ("import sys\nfrom adapters_backend.plugins.manager import discover\n"
            "from adapters_backend.cli.main import build_parser\nr = discover(); build_parser()\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'PySide6', 'llama_cpp') if m in sys.modules]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


BAD_PLUGINS = REPO / "tests" / "fixtures" / "bad_plugins"      # a committed dist-info, one bad plugin per entry point
BAD_ERRORS = {
    "bad-shape": "'formats' must be a list, not int",
    "bad-type": "manifest must be a PluginManifest or a dict, not list",
    "bad-fields": "'name' must be a str, not NoneType",
    "bad-clash": "format id 'peft' is already provided by plugin 'peft'",
    "bad-missing": "cannot load 'lorabad.missing:no_such_sniff'",
    "bad-uncallable": "'lorabad.uncallable:SNIFF' (sniff of format 'bad.uncallable') is a int, not a function",
    "bad-sniff": "sniff of format 'bad.sniff' raised ZeroDivisionError: the sniff of this plugin divides by zero",
    "bad-score": "sniff of format 'bad.score' returned nan, not a score between 0 and 1",
}


@pytest.fixture
def bad_plugins(monkeypatch):
    monkeypatch.syspath_prepend(str(BAD_PLUGINS))
    reset_default_registry()
    yield
    reset_default_registry()
    for name in [m for m in sys.modules if m.startswith("lorabad")]:
        del sys.modules[name]


def test_malformed_manifests_are_listed_as_broken_and_discovery_never_raises(bad_plugins):
    registry = discover()
    by_name = {p.name: p for p in registry.plugins}
    for name in ("bad-shape", "bad-type", "bad-fields", "bad-clash"):
        assert not by_name[name].ok and BAD_ERRORS[name] in by_name[name].errors[0], by_name[name].errors
    assert "bad.fields" not in registry.formats and registry.formats["peft"][1].name == "peft"
    # the other broken ones import and validate; they break when resolved or called: check() finds them
    registry.check()
    for name in ("bad-missing", "bad-uncallable", "bad-sniff", "bad-score"):
        assert any(BAD_ERRORS[name] in e for e in by_name[name].errors), by_name[name].errors
    assert any("bad-missing-arch" in e or "NO_TABLE" in e for e in by_name["bad-missing"].errors)
    assert any("is a int, not an ArchSpec" in e for e in by_name["bad-uncallable"].errors)
    assert by_name["bad-read"].ok                         # fine until it meets a .boom file
    assert all(by_name[n].ok for n in BUILTIN), [(n, by_name[n].errors) for n in BUILTIN]


def test_errors_met_while_reading_are_listed_by_check(bad_plugins, tmp_path):
    from adapters_backend.plugins.manager import default_registry
    boom = tmp_path / "x.boom"
    boom.write_bytes(b"boom")
    with pytest.raises(AdapterFormatError, match="the 'bad-read' format plugin failed to read it: KeyError"):
        read_adapter(boom)
    rows = {p.name: p for p in default_registry().check()}
    assert not rows["bad-read"].ok
    assert any("read of format 'bad.read' raised KeyError" in e and "x.boom" in e for e in rows["bad-read"].errors)


def test_plugins_command_lists_malformed_plugins_with_exit_0_and_inspect_still_works(tmp_path):
    from fixtures.small_adapters import write_peft
    listing = _run_cli(["plugins", "--json"], extra_path=BAD_PLUGINS)
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in json.loads(listing.stdout)["plugins"]}
    for name, error in BAD_ERRORS.items():
        assert not rows[name]["ok"] and any(error in e for e in rows[name]["errors"]), (name, rows[name])
    assert all(rows[n]["ok"] for n in BUILTIN)
    text = _run_cli(["plugins"], extra_path=BAD_PLUGINS)
    assert text.returncode == 0 and text.stdout.count("BROKEN") == len(BAD_ERRORS)
    assert "'formats' must be a list, not int" in text.stdout
    adapter = write_peft(tmp_path / "plain", seed=4)
    report = _run_cli(["inspect", str(adapter), "--json"], extra_path=BAD_PLUGINS)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["format"] == "peft"


def test_a_manifest_object_that_exits_or_raises_while_validated_is_recorded(site):
    """A dict subclass whose methods call sys.exit or raise: discovery records it and goes on."""
    make_distribution(site, "hostile-manifest", "1.0", {"exits": "hostile_manifest:EXITS", "raises": "hostile_manifest:RAISES"},
                      {"hostile_manifest/__init__.py": (
                          "import sys\n"
                          "class Exits(dict):\n    def get(self, *a):\n        sys.exit(4)\n"
                          "class BadStr(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n"
                          "class Raises(dict):\n    def get(self, *a):\n        raise BadStr()\n"
                          "EXITS = Exits(name='x')\nRAISES = Raises(name='y')\n")})
    registry = discover()
    by_name = {p.name: p for p in registry.plugins}
    assert "SystemExit" in by_name["exits"].errors[0]
    assert "BadStr: (its message cannot be shown)" in by_name["raises"].errors[0]
    assert all(by_name[n].ok for n in BUILTIN)
