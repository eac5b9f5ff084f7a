"""JSON files a Hub repository serves (an adapter's config, a model's config and weight index) are read
the way local ones are: a hostile one is a HubError naming the repository and the file, and a file the
listing says is large is not fetched at all."""
from __future__ import annotations

import pytest
from hub.conftest import BASE_ID, folder_files, peft_repo

from adapters_backend import hub as h
from adapters_backend.errors import HubError
from adapters_backend.hub.skeleton import hub_base_info

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_NUMBER = b"1" * 5000


def gets(hub, repo_id, name):
    return [p for m, p, _ in hub.requests if m == "GET" and p.startswith(f"/{repo_id}/resolve/") and p.endswith(name)]


@pytest.mark.parametrize("config, why", [
    (b'{"peft_type": "LORA", "r": 2, "x": ' + DEEP + b"}", "nested too deeply"),
    (b'{"peft_type": "LORA", "r": ' + HUGE_NUMBER + b"}", "digits"),
    (b'{"peft_type": "LORA", "base_model_name_or_path": "\\ud800"}', "surrogate"),
    (b'{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "\xff": 1}', "utf-8"),
    (b'["LORA"]', "not list"),
])
def test_a_hostile_adapter_config_is_an_error_naming_the_file(hub, tmp_path, config, why):
    files = peft_repo(tmp_path, "hostile")
    files["adapter_config.json"] = config
    hub.add("mallory/hostile-config", files, tags=["peft", "lora"], library_name="peft")
    with pytest.raises(HubError, match=f"mallory/hostile-config.*adapter_config.json: not valid JSON .*{why}"):
        h.repo_details("mallory/hostile-config", base=hub.base_dir)


def test_a_config_the_listing_calls_huge_is_not_fetched(hub, tmp_path):
    repo = hub.add("mallory/huge-config", peft_repo(tmp_path, "huge"), tags=["peft", "lora"], library_name="peft")
    repo.claimed_sizes["adapter_config.json"] = 10 << 30
    with pytest.raises(HubError, match="adapter_config.json is 10.7 GB, not the small file it should be"):
        h.repo_details("mallory/huge-config", base=hub.base_dir)
    assert not gets(hub, "mallory/huge-config", "adapter_config.json")


@pytest.mark.parametrize("name, text", [("config.json", DEEP), ("model.safetensors.index.json", DEEP),
                                        ("config.json", b"[1, 2]")])
def test_a_hostile_base_model_json_is_an_error_naming_the_file(hub, name, text):
    files = folder_files(hub.base_dir)
    if name == "model.safetensors.index.json":
        files["model.safetensors.index.json"] = files.pop("model.safetensors") and text
    files[name] = text
    hub.add("mallory/hostile-base", files, tags=["safetensors", "llama"], library_name="transformers")
    with pytest.raises(HubError, match=f"mallory/hostile-base.*{name}: not valid JSON"):
        hub_base_info("mallory/hostile-base")
    # The adapter's details still come, with the verdict saying why there is none.
    d = h.repo_details("alice/tiny-style-lora", base="mallory/hostile-base")
    assert d.rank == 8 and d.compat["verdict"] is None, d.compat
    assert f"{name}: not valid JSON" in d.compat["summary"]


def test_the_base_model_the_adapter_names_is_still_read(hub):
    """The bounded readers change nothing for a sane repository."""
    base = hub_base_info(BASE_ID)
    assert base.n_layers == 2 and base.hidden == 64
