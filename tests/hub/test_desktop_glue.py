"""desktop_app.hub_access / library_access on the real backend (plain functions, no Qt needed)."""
from __future__ import annotations

from pathlib import Path

from hub.conftest import BASE_ID

from desktop_app import hub_access, library_access


def test_hub_access_round_trip(hub):
    rows = hub_access.search({"kind": "adapter", "text": None, "base": BASE_ID, "format": None,
                              "sort": "updated"}, 0, 2, None)
    assert [r["repo_id"] for r in rows] == ["bob/wide-lora", "alice/tiny-style-lora"]
    assert {"repo_id", "format", "base_model", "downloads", "likes", "updated"} <= set(rows[0])
    more = hub_access.search({"kind": "adapter", "base": BASE_ID, "sort": "updated"}, 1, 2, None)
    assert [r["repo_id"] for r in more] == ["erin/gated-lora"]
    d = hub_access.details("bob/wide-lora", "adapter", {"path": str(hub.base_dir), "id": None, "engine": "llama.cpp"})
    assert d["compat"].status == "incompatible" and not d["compat"].usable and "hidden size" in d["compat"].reason
    assert d["rank"] == 8 and d["targets"] == ["q_proj", "v_proj"] and d["files"][0]["name"]
    m = hub_access.details("dave/tiny-llama-GGUF", "model", None)
    assert [f["name"] for f in m["files"]] == ["tiny-llama-Q4_K_M.gguf", "tiny-llama-Q8_0.gguf"]   # models only
    assert all(f["fits"] for f in m["files"]) and m["suggested"] == "tiny-llama-Q4_K_M.gguf"
    path = hub_access.download_model_file("dave/tiny-llama-GGUF", ["tiny-llama-Q4_K_M.gguf"], None)
    assert path.endswith("tiny-llama-Q4_K_M.gguf")
    split = hub_access.details("gina/big-llama-GGUF", "model", None)["files"][1]
    path = hub_access.download_model_file("gina/big-llama-GGUF", split["parts"], None)
    assert path.endswith("-00001-of-00002.gguf") and Path(path).with_name(split["parts"][1]).is_file()
    entry = hub_access.download_and_install("alice/tiny-style-lora", None)
    assert entry.source.startswith("hub:alice/tiny-style-lora@") and entry.format == "peft"
    listed = library_access.list_entries()
    assert listed == [entry]
    library_access.rename(entry.id, "Styled")
    library_access.set_notes(entry.id, "nice")
    e = library_access.list_entries()[0]
    assert (e.name, e.notes) == ("Styled", "nice")
    library_access.remove(entry.id)
    assert library_access.list_entries() == []
    hub_access.set_token("hf_test_token_123")
    assert "token is set" in hub_access.token_status()
