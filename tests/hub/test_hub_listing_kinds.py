"""What the Hub lists about a repository (its tags, counts, dates, file sizes) is data from the network:
each value is read by kind. One of another kind in a search result is left out; a date huggingface_hub
cannot parse, or a file size that is no count of bytes, is a HubError naming the repository and what
it sent, before anything is downloaded."""
from __future__ import annotations

import pytest

from adapters_backend import hub as h
from adapters_backend.errors import HubError
from adapters_backend.library import Library

STYLE = "alice/tiny-style-lora"


def test_a_search_result_keeps_what_has_the_right_kind(hub):
    style = hub.repos[STYLE]
    style.downloads, style.library_name, style.card = "many", ["peft"], {"base_model": {"x": 1}, "license": ["a"]}
    wide = hub.repos["bob/wide-lora"]
    wide.likes, wide.tags = {"a": 1}, wide.tags + [7, None]
    got = {r.repo_id: r for r in h.search("lora", limit=10)}
    assert (got[STYLE].downloads, got[STYLE].license) == (None, None)
    assert got[STYLE].format == "peft"                          # from its tags, the library name being no text
    assert got[STYLE].base_model == "tiny-org/tiny-llama"      # from its tag, the card's being no text
    assert got["bob/wide-lora"].likes is None and all(isinstance(t, str) for t in got["bob/wide-lora"].tags)
    assert got["bob/wide-lora"].downloads == 100                # the rest as listed


@pytest.mark.parametrize("modified", ["not a date", 5])
def test_a_listing_huggingface_hub_cannot_parse_is_a_hub_error(hub, modified):
    hub.repos[STYLE].modified = modified
    with pytest.raises(HubError, match="the Hub sent a search result that cannot be read"):
        h.search("lora", limit=10)


@pytest.mark.parametrize("size", ["big", -5, True, 1e20, [1]])
def test_a_listed_size_that_is_no_size_is_refused_before_downloading(hub, size):
    hub.repos[STYLE].claimed_sizes["adapter_model.safetensors"] = size
    for attempt in (lambda: h.repo_details(STYLE), lambda: h.install_from_hub(STYLE)):
        with pytest.raises(HubError, match=f"{STYLE}: the Hub's file list gives adapter_model.safetensors the size"):
            attempt()
    assert not [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p and "safetensors" in p]
    assert Library().list() == []
