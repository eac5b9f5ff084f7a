"""`loradeck hub …` and `loradeck library …` against the fake Hub, with --json output."""
from __future__ import annotations

import json
from pathlib import Path

from hub.conftest import BASE_ID

from adapters_backend.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hub_search_json(hub, capsys):
    code, out, _ = run(capsys, "hub", "search", "--base", BASE_ID, "--sort", "likes", "--limit", "2", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["repo_id"] for r in rows] == ["bob/wide-lora", "alice/tiny-style-lora"]
    assert rows[0]["format"] == "peft" and rows[0]["base_model"] == BASE_ID


def test_hub_show_json_with_verdict(hub, capsys):
    code, out, _ = run(capsys, "hub", "show", "bob/wide-lora", "--base", str(hub.base_dir), "--json")
    d = json.loads(out)
    assert code == 0 and d["rank"] == 8 and d["compat"]["verdict"] == "incompatible"
    code, out, _ = run(capsys, "hub", "show", "alice/tiny-style-lora", "--base", str(hub.base_dir))
    assert "verdict: compatible" in out and "apache-2.0" in out


def test_download_install_and_library_commands(hub, capsys, tmp_path):
    code, out, _ = run(capsys, "hub", "download", "alice/tiny-style-lora", "--install", "--json")
    entry = json.loads(out)["installed"]
    assert code == 0 and entry["source"].startswith("hub:alice/tiny-style-lora@")
    code, out, _ = run(capsys, "hub", "download", "dave/tiny-llama-GGUF", "--quant", "Q8_0", "--json")
    assert json.loads(out)["path"].endswith("tiny-llama-Q8_0.gguf")
    code, out, _ = run(capsys, "hub", "download", "gina/big-llama-GGUF", "--quant", "Q8_0", "--json")
    first = Path(json.loads(out)["path"])                       # a split model comes with all its parts
    assert code == 0 and first.name == "big-llama-Q8_0-00001-of-00002.gguf"
    assert (first.parent / "big-llama-Q8_0-00002-of-00002.gguf").read_bytes() == b"GGUF" + b"\2" * 200
    code, out, _ = run(capsys, "library", "rename", entry["id"], "Style")
    assert code == 0
    code, out, _ = run(capsys, "library", "list", "--json")
    listed = json.loads(out)
    assert [(e["id"], e["name"]) for e in listed] == [(entry["id"], "Style")]
    code, out, _ = run(capsys, "library", "install", "hf:bob/wide-lora", "--json")
    assert json.loads(out)["source"].startswith("hub:bob/wide-lora@")
    code, out, _ = run(capsys, "library", "remove", "Style")
    code, out, _ = run(capsys, "library", "list", "--json")
    assert [e["name"] for e in json.loads(out)] == ["wide-lora"]


def test_errors_are_one_line(hub, capsys):
    code, out, err = run(capsys, "hub", "download", "erin/gated-lora", "--install")
    assert code == 2 and "gated" in err and "Traceback" not in err
    code, out, err = run(capsys, "library", "install", str(hub.base_dir / "nope"))
    assert code == 2 and "no such file" in err
