"""The base an adapter declares is looked up on the Hub (its config.json, once, into the HF cache), so
the compatibility check knows that base's family: an adapter trained on a Qwen2 model is refused on a
Llama base even when every shape fits — before download in the Hub browser, and after an install."""
from __future__ import annotations

import json

from fixtures.small_adapters import write_peft
from hub.conftest import folder_files

from adapters_backend import hub as h
from adapters_backend.cli.main import main as cli
from adapters_backend.core.declared_base import declared_architecture
from adapters_backend.hub.details import MAX_BASE_CONFIG_BYTES, fetch_declared_base_config

QWEN_BASE = "qwen-org/qwen-base"


def _qwen_trained_adapter(hub, tmp_path, declared: str = QWEN_BASE) -> str:
    """A Llama-shaped adapter (it fits the tiny Llama's shapes exactly) whose config names a Qwen2 base."""
    repo = f"mallory/{declared.split('/')[-1]}-lora"
    files = folder_files(write_peft(tmp_path / repo.replace("/", "--"), base_model=declared))
    hub.add(repo, files, tags=["peft", "lora"], library_name="peft")
    return repo


def test_the_declared_bases_family_is_fetched_and_decides(hub, tmp_path):
    hub.add(QWEN_BASE, {"config.json": json.dumps({"model_type": "qwen2", "num_hidden_layers": 2}).encode()},
            tags=["qwen2"], library_name="transformers")
    repo = _qwen_trained_adapter(hub, tmp_path)
    assert declared_architecture(QWEN_BASE) is None                # nothing known before the Hub is asked

    d = h.repo_details(repo, base=hub.base_dir)                    # the Hub browser's verdict, before download
    assert d.compat["verdict"] == "incompatible", d.compat
    assert "a Qwen2 model, the base is Llama" in d.compat["summary"]
    assert declared_architecture(QWEN_BASE) == "qwen2"             # now in the HF cache, for every later check

    config_gets = [p for m, p, _ in hub.requests if m == "GET" and QWEN_BASE in p and p.endswith("config.json")]
    h.repo_details(repo, base=hub.base_dir)
    again = [p for m, p, _ in hub.requests if m == "GET" and QWEN_BASE in p and p.endswith("config.json")]
    assert len(config_gets) == 1 and again == config_gets          # fetched once


def test_an_install_from_the_hub_brings_the_declared_base_along(hub, tmp_path, capsys):
    hub.add(QWEN_BASE, {"config.json": json.dumps({"model_type": "qwen2", "num_hidden_layers": 2}).encode()},
            tags=["qwen2"], library_name="transformers")
    entry = h.install_from_hub(_qwen_trained_adapter(hub, tmp_path))
    assert declared_architecture(QWEN_BASE) == "qwen2"
    assert cli(["check", str(entry.path), "--base", str(hub.base_dir)]) == 3      # does not fit: another family
    assert "Qwen2" in capsys.readouterr().out


def test_an_oversized_unknown_or_unreachable_declared_base_is_skipped(hub, tmp_path):
    padding = b" " * (MAX_BASE_CONFIG_BYTES + 1)
    hub.add("huge-org/huge-base", {"config.json": b'{"model_type": "qwen2"}' + padding})
    assert fetch_declared_base_config("huge-org/huge-base") is None
    assert declared_architecture("huge-org/huge-base") is None     # never downloaded
    big_gets = [p for m, p, _ in hub.requests if m == "GET" and "huge-org" in p and p.endswith("config.json")]
    assert big_gets == []
    assert fetch_declared_base_config("nobody/no-such-model") is None
    assert fetch_declared_base_config("/some/local/folder") is None and fetch_declared_base_config(None) is None
    # an adapter declaring an unknown base still gets its verdict from shapes alone
    d = h.repo_details(_qwen_trained_adapter(hub, tmp_path, "nobody/no-such-model"), base=hub.base_dir)
    assert d.compat["verdict"] == "compatible", d.compat
    hub.stop()                                                     # offline: nothing to fetch, no error
    assert fetch_declared_base_config("other-org/never-seen") is None
