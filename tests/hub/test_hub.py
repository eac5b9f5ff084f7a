"""huggingface_hub against the fake Hub: search, details with verdict, downloads, errors, offline."""
from __future__ import annotations

import hashlib
import threading

import pytest
from hub.conftest import BASE_ID

from adapters_backend import hub as h
from adapters_backend.errors import HubAccessError, HubError, HubNotFoundError, HubOfflineError, JobCancelled
from adapters_backend.hub.download import storage_folder
from adapters_backend.jobs import JobContext
from adapters_backend.library import Library


def ids(results):
    return [r.repo_id for r in results]


def test_search_text_base_format_sort(hub):
    assert ids(h.search(base=BASE_ID)) == ["alice/tiny-style-lora", "bob/wide-lora", "erin/gated-lora"]
    assert ids(h.search(base=BASE_ID, sort="likes"))[0] == "bob/wide-lora"
    assert ids(h.search(base=BASE_ID, sort="recency"))[0] == "bob/wide-lora"
    assert ids(h.search("style")) == ["alice/tiny-style-lora"]
    assert ids(h.search(fmt="kohya")) == ["carol/kohya-poems"]
    r = h.search(base=BASE_ID, limit=1)[0]
    assert (r.format, r.base_model, r.downloads, r.license) == ("peft", BASE_ID, 500, "apache-2.0")
    # the Hub's filters were sent as repeated `filter` params
    assert any("filter=base_model%3Aadapter%3Atiny-org%2Ftiny-llama" in p for _, p, _ in hub.requests)
    with pytest.raises(ValueError, match="unknown format"):
        h.search(fmt="onnx")


def test_paging_follows_link_headers(hub):
    everything = ids(h.search(fmt="peft", limit=100))
    assert len(everything) == 12 and len(set(everything)) == 12        # server pages hold 3
    assert ids(h.search(fmt="peft", limit=4, offset=4)) == everything[4:8]
    assert ids(list(h.iter_search(fmt="peft")))[:5] == everything[:5]
    assert sum(1 for _, p, _ in hub.requests if "cursor=" in p) >= 3


def test_models_search_and_gguf_pick(hub):
    assert ids(h.search(base=BASE_ID, kind="model")) == ["dave/tiny-llama-GGUF"]
    files = h.gguf_files("dave/tiny-llama-GGUF")
    assert [(f["quant"], f["size"]) for f in files] == [("Q4_K_M", 404), ("Q8_0", 804)]
    assert h.pick_gguf("dave/tiny-llama-GGUF")["name"] == "tiny-llama-Q4_K_M.gguf"
    assert h.pick_gguf("dave/tiny-llama-GGUF", "q8_0")["name"] == "tiny-llama-Q8_0.gguf"
    with pytest.raises(HubError, match="no Q2_K file; available: Q4_K_M, Q8_0"):
        h.pick_gguf("dave/tiny-llama-GGUF", "Q2_K")


def test_a_split_model_is_one_model_and_downloads_whole(hub):
    models = h.gguf_files("gina/big-llama-GGUF")
    # No projector, no split with a part missing; the split counted once, with its parts' total size.
    assert [(m["quant"], m["parts"], m["size"]) for m in models] == [
        ("Q4_K_M", ["big-llama-Q4_K_M.gguf"], 304),
        ("Q8_0", ["big-llama-Q8_0-00001-of-00002.gguf", "big-llama-Q8_0-00002-of-00002.gguf"], 608)]
    assert models[1]["name"] == "big-llama-Q8_0-00001-of-00002.gguf"
    assert h.pick_gguf("gina/big-llama-GGUF", "q8_0")["parts"] == models[1]["parts"]
    with pytest.raises(HubError, match="no Q2_K file"):
        h.pick_gguf("gina/big-llama-GGUF", "Q2_K")
    d = h.repo_details("gina/big-llama-GGUF")
    assert [m["name"] for m in d.gguf_files] == [m["name"] for m in models]


def test_the_suggested_model_fits_the_computer():
    from adapters_backend.hub import suggested_model
    gb = 10**9
    q2, q4, q8, f16 = ({"name": q, "parts": [q], "size": s * gb, "quant": q} for q, s in
                       (("Q2_K", 3), ("Q4_K_M", 5), ("Q8_0", 9), ("F16", 16)))
    assert suggested_model([q2, q4, q8, f16], 32 * gb) is q4                  # the usual balance, when it fits
    assert suggested_model([q2, q4, q8, f16], 4 * gb) is q2                   # else the largest that fits
    assert suggested_model([q2, q8, f16], 32 * gb) is f16                     # (16 GB of 32: fits)
    assert suggested_model([q8, f16], 8 * gb) is q8                           # nothing fits: the smallest
    assert suggested_model([q2, q8], None) is q2                              # memory unknown: the smallest
    assert suggested_model([q2, q4, q8], None) is q4
    assert suggested_model([], 8 * gb) is None


def test_details_and_verdict_without_downloading_weights(hub):
    d = h.repo_details("alice/tiny-style-lora", base=hub.base_dir)
    assert (d.format, d.rank, d.alpha, d.targets, d.license, d.base_model) == (
        "peft", 8, 16, ["q_proj", "v_proj"], "apache-2.0", BASE_ID)
    assert {f["name"] for f in d.files} == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert all(f["size"] for f in d.files) and len(d.revision) == 40
    assert d.compat["verdict"] == "compatible" and d.compat["compatible"]
    # the weights were read by header only: every GET on them was a small Range request
    gets = [hd for m, p, hd in hub.requests if m == "GET" and p.endswith("adapter_model.safetensors")]
    assert gets and all(hd.get("range", hd.get("Range", "")).startswith("bytes=") for hd in gets)
    wide = h.repo_details("bob/wide-lora", base=BASE_ID)            # base given as a Hub id
    assert wide.compat["verdict"] == "incompatible" and "hidden size" in wide.compat["summary"]
    gguf = h.repo_details("dave/tiny-llama-GGUF", base=hub.base_dir)
    assert gguf.compat["verdict"] is None and [f["quant"] for f in gguf.gguf_files] == ["Q4_K_M", "Q8_0"]


def test_not_found_and_gated_messages(hub):
    with pytest.raises(HubNotFoundError, match="nobody/nothing: repository not found"):
        h.repo_details("nobody/nothing")
    with pytest.raises(HubNotFoundError, match="no such revision"):
        h.repo_details("alice/tiny-style-lora", revision="v9")
    d = h.repo_details("erin/gated-lora")          # details are public; the files are not
    assert d.gated
    with pytest.raises(HubAccessError) as info:
        h.install_from_hub("erin/gated-lora")
    msg = str(info.value)
    assert "erin/gated-lora" in msg and "gated" in msg and "accept its terms" in msg and "token" in msg
    with pytest.raises(HubError, match="only pickle weights"):
        h.install_from_hub("frank/pickle-only")


def test_token_unlocks_gated_repo(hub, monkeypatch):
    with pytest.raises(HubAccessError, match="rejected"):
        h.set_token("hf_wrong")
    assert h.token_source() is None
    assert h.set_token("hf_test_token_123") == "tester"
    assert h.token_source() == "token file"
    e = h.install_from_hub("erin/gated-lora")
    assert e.source.startswith("hub:erin/gated-lora@")


def test_download_progress_and_install_provenance(hub):
    seen = []
    ctx = JobContext(lambda done, total, msg: seen.append((done, total, msg)))
    e = h.install_from_hub("alice/tiny-style-lora", ctx=ctx)
    commit = hub.repos["alice/tiny-style-lora"].commits[-1][0]
    assert e.source == f"hub:alice/tiny-style-lora@{commit}" and e.stored == "reference"
    assert e.license == "apache-2.0" and e.format == "peft" and e.rank == 8
    assert e.path == storage_folder("alice/tiny-style-lora") / "snapshots" / commit   # in the HF cache, not copied
    assert (storage_folder("alice/tiny-style-lora") / "refs" / "main").read_text() == commit
    assert seen[-1][0] == seen[-1][1] > 0 and "/s" in seen[-1][2]
    assert Library().get(e.id).source == e.source
    # the cache layout is huggingface_hub's own: it finds the file without a download
    from huggingface_hub import try_to_load_from_cache
    assert try_to_load_from_cache("alice/tiny-style-lora", "adapter_config.json") is not None
    # same content again → the same entry
    assert h.install_from_hub("alice/tiny-style-lora").id == e.id


def test_revision_pinning(hub, tmp_path):
    from hub.conftest import peft_repo
    old = hub.repos["alice/tiny-style-lora"].commits[-1][0]
    hub.add("alice/tiny-style-lora", peft_repo(tmp_path, "v2", seed=77))
    new = h.install_from_hub("alice/tiny-style-lora")
    pinned = h.install_from_hub("alice/tiny-style-lora", revision=old)
    assert pinned.source.endswith("@" + old) and not new.source.endswith("@" + old)
    assert pinned.sha256 != new.sha256


def test_cancel_mid_download_then_resume(hub):
    hub.throttle = 0.002
    files = hub.repos["alice/big-lora"].commits[-1][1]
    want = hashlib.sha256(files["adapter_model.safetensors"]).hexdigest()
    ctx = JobContext(lambda done, total, msg: ctx.cancel() if done > total / 3 else None)
    with pytest.raises(JobCancelled):
        h.install_from_hub("alice/big-lora", ctx=ctx)
    blobs = storage_folder("alice/big-lora") / "blobs"
    partial = blobs / f"{want}.loradeck-partial"
    assert partial.exists() and 0 < partial.stat().st_size < len(files["adapter_model.safetensors"])
    assert Library().list() == []
    hub.throttle = 0.0
    hub.requests.clear()
    e = h.install_from_hub("alice/big-lora")
    ranges = [hd.get("range") or hd.get("Range") for m, p, hd in hub.requests
              if m == "GET" and p.endswith("adapter_model.safetensors")]
    assert ranges == [f"bytes={partial_size}-" for partial_size in [ranges and int(ranges[0][6:-1])]]
    assert int(ranges[0][6:-1]) > 0                                   # resumed, not restarted
    blob = (e.path / "adapter_model.safetensors").resolve()
    assert blob.name == want and hashlib.sha256(blob.read_bytes()).hexdigest() == want
    assert not partial.exists()


def test_connection_reset_mid_file_resumes_with_range(hub):
    files = hub.repos["alice/big-lora"].commits[-1][1]
    hub.reset_after["adapter_model.safetensors"] = 100_000
    e = h.install_from_hub("alice/big-lora")
    ranges = [hd.get("range") or hd.get("Range") for m, p, hd in hub.requests
              if m == "GET" and p.endswith("adapter_model.safetensors")]
    assert ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert (e.path / "adapter_model.safetensors").read_bytes() == files["adapter_model.safetensors"]


def test_server_error_is_reported(hub):
    hub.fail_500["adapter_model.safetensors"] = 50
    with pytest.raises(HubError, match="HTTP 500"):
        h.install_from_hub("alice/tiny-style-lora")
    assert Library().list() == []


def test_offline_uses_cache(hub, monkeypatch):
    e = h.install_from_hub("alice/tiny-style-lora")
    Library().remove(e.id)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = h.install_from_hub("alice/tiny-style-lora")      # from the cache, no request
    assert again.sha256 == e.sha256
    with pytest.raises(HubOfflineError, match=r"switched off here \(HF_HUB_OFFLINE is set\)"):
        h.search("style")
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE.*never downloaded"):
        h.install_from_hub("bob/wide-lora")


def test_server_gone_counts_as_offline(hub):
    h.install_from_hub("alice/tiny-style-lora")
    hub.stop()
    path = h.download_files("alice/tiny-style-lora", ["adapter_config.json"])
    assert (path / "adapter_config.json").exists()
    e = h.install_from_hub("alice/tiny-style-lora")           # served from the cache, message-free
    assert e.source.startswith("hub:alice/tiny-style-lora@")
    with pytest.raises(HubOfflineError, match="Can't reach the Hugging Face Hub.*Not in the local cache"):
        h.download_files("alice/tiny-style-lora", ["never-downloaded.json"])


def test_two_downloads_of_one_file_at_once(hub):
    errors = []

    def run():
        try:
            h.download_files("alice/big-lora", ["adapter_model.safetensors"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
