"""Bad input never changes the library: malicious zips (traversal, symlink, bomb), corrupt adapters and
pickles are refused with the file and the reason; the top-level CLI aliases work like `library …`."""
from __future__ import annotations

import json
import os
import zipfile

import pytest
from fixtures.small_adapters import write_peft

from adapters_backend.cli.main import main
from adapters_backend.errors import BackendError
from adapters_backend.library import Library


def _snapshot(lib_root):
    index = lib_root / "index.json"
    files = sorted(str(p.relative_to(lib_root)) for p in lib_root.rglob("*") if p.is_file() and ".lock" not in p.name)
    return (index.read_bytes() if index.exists() else None), files


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "library")
    library.install(str(write_peft(tmp_path / "good", seed=1)))
    return library


def _zip_with(tmp_path, name, extra):
    good = write_peft(tmp_path / f"src-{name}", seed=5)
    path = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in good.iterdir():
            z.write(f, f"adapter/{f.name}")
        extra(z)
    return path


def _symlink(z):
    info = zipfile.ZipInfo("adapter/link")
    info.external_attr = (0o120777 << 16)          # a symlink entry pointing out of the archive
    z.writestr(info, "../../../etc/passwd")


CASES = {
    "traversal": (lambda z: z.writestr("../../escaped.txt", "x"), "outside|traversal"),
    "symlink": (_symlink, "symlink|link"),
    "bomb": (lambda z: z.writestr("adapter/zeros.bin", b"\0" * (300 * 1024 * 1024)), "ratio|bomb|too large|limit"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_malicious_zip_is_refused_and_nothing_changes(kind, lib, tmp_path):
    extra, reason = CASES[kind]
    archive = _zip_with(tmp_path, kind, extra)
    before = _snapshot(lib.root)
    with pytest.raises(BackendError, match=reason) as info:
        lib.install(str(archive))
    assert archive.name in str(info.value)
    assert _snapshot(lib.root) == before
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_corrupt_adapter_and_pickle_are_refused(lib, tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    before = _snapshot(lib.root)
    bad = write_peft(tmp_path / "bad", seed=2)
    weights = bad / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])          # truncated mid-header/data
    with pytest.raises(BackendError, match="adapter_model.safetensors"):
        lib.install(str(bad))
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 2}))
    (evil / "adapter_model.bin").write_bytes(b"\x80\x04\x95" + os.urandom(64))
    with pytest.raises(BackendError, match="adapter_model.bin"):
        lib.install(str(evil))
    assert _snapshot(lib.root) == before


def test_top_level_cli_aliases(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))
    src = write_peft(tmp_path / "mine", seed=9)
    assert main(["install", str(src), "--name", "mine", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert main(["list", "--json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["mine"]
    assert main(["rename", entry["id"], "renamed"]) == 0
    capsys.readouterr()
    assert main(["library", "list", "--json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["renamed"]
    assert main(["remove", entry["id"]]) == 0
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
