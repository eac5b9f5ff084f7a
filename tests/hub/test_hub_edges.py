"""Hub edges against the fake Hub: a connection dropped mid-answer is retried into a verdict (not
"offline"); after a redirect to another host the token stays behind; names from the server (files,
commit, ETag) and from the user (repository, revision, file) that would escape the cache are refused."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from fixtures.fake_hub import TOKEN, FakeHub
from hub.conftest import BASE_ID, peft_repo

from adapters_backend import hub as h
from adapters_backend.errors import HubError, HubOfflineError
from adapters_backend.hub.download import storage_folder
from adapters_backend.library import Library

WEIGHTS = "adapter_model.safetensors"


def weight_gets(hub, repo_id, name=WEIGHTS):
    return [hd for m, p, hd in hub.requests if m == "GET" and p.startswith(f"/{repo_id}/resolve/") and p.endswith(name)]


def test_connection_dropped_mid_header_is_retried_into_a_verdict(hub):
    hub.reset_after[WEIGHTS] = 20                       # the first header range breaks off after 20 bytes
    d = h.repo_details("alice/tiny-style-lora", base=hub.base_dir)
    assert d.compat["verdict"] == "compatible", d.compat
    assert "reset_after" not in str(d.compat) and len(weight_gets(hub, "alice/tiny-style-lora")) == 2
    # The same for the base model's header (a Hub id as base) and for the repository listing itself.
    hub.requests.clear()
    hub.reset_after["model.safetensors"] = 50
    hub.hang_up["/api/models/bob/wide-lora"] = 1
    wide = h.repo_details("bob/wide-lora", base=BASE_ID)
    assert wide.compat["verdict"] == "incompatible" and "hidden size" in wide.compat["summary"]
    assert len(weight_gets(hub, BASE_ID, "model.safetensors")) == 2
    assert sum(p.startswith("/api/models/bob/wide-lora") for _, p, _ in hub.requests) == 2


def test_a_connection_that_keeps_breaking_is_not_called_offline(hub):
    hub.hang_up["/api/models/alice/tiny-style-lora"] = 100
    t0 = time.monotonic()
    with pytest.raises(HubError) as info:
        h.repo_details("alice/tiny-style-lora")
    assert not isinstance(info.value, HubOfflineError)
    assert "broke off" in str(info.value) and "try again" in str(info.value)
    assert sum(p.startswith("/api/models/alice/tiny-style-lora") for _, p, _ in hub.requests) == 4   # 1 + 3 retries
    assert time.monotonic() - t0 < 10
    hub.hang_up.clear()
    assert h.repo_details("alice/tiny-style-lora").rank == 8       # the Hub still counts as reachable


def auth(headers: dict) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == "authorization"), None)


def _second_loopback_host() -> str:
    """127.0.0.2 where the system routes all of 127/8 to loopback (Linux), else 127.0.0.1 (another port)."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "127.0.0.1"


def test_token_stays_behind_after_a_redirect_to_another_host(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cdn = FakeHub(host=_second_loopback_host()).start()
    cdn.repos = hub.repos                               # the same files, served from elsewhere
    try:
        hub.redirect[WEIGHTS] = cdn.url
        d = h.repo_details("alice/big-lora", base=hub.base_dir)     # the header, read through the redirect
        assert d.compat["verdict"] is not None and d.rank == 64, d.compat
        e = h.install_from_hub("alice/big-lora")                      # the download, through the redirect
        files = hub.repos["alice/big-lora"].commits[-1][1]
        assert (e.path / WEIGHTS).read_bytes() == files[WEIGHTS]
        at_hub = weight_gets(hub, "alice/big-lora") + [hd for m, p, hd in hub.requests if m == "HEAD" and p.endswith(WEIGHTS)]
        at_cdn = [hd for m, p, hd in cdn.requests if p.endswith(WEIGHTS)]
        assert at_hub and all(auth(hd) == f"Bearer {TOKEN}" for hd in at_hub)          # sent to the Hub
        assert len(at_cdn) >= 2                                       # header range(s) and the download
        assert not any(auth(hd) for hd in at_cdn), at_cdn
    finally:
        cdn.stop()


def _outside(tmp_path: Path) -> list[Path]:
    """Files named 'escape*' or 'evil*' anywhere under tmp_path (none may be written)."""
    return [p for p in tmp_path.rglob("*") if p.name.startswith(("escape", "evil"))]


@pytest.mark.parametrize("name, why", [
    ("..\\..\\evil.safetensors", "backslash"),
    ("C:evil.safetensors", "drive letter"),
    ("CON.safetensors", "reserved device name"),
    ("lpt1 .safetensors", "reserved device name"),
    ("evil|pipe.safetensors", "the character '|'"),
])
def test_hostile_file_names_from_the_server_are_refused(hub, tmp_path, name, why):
    files = peft_repo(tmp_path / "src", "m")
    files[name] = files.pop(WEIGHTS)
    hub.add("mallory/names", files, tags=["peft"], library_name="peft")
    d = h.repo_details("mallory/names", base=hub.base_dir)
    assert d.compat["verdict"] is None and "will not save" in d.compat["summary"] and why in d.compat["summary"]
    with pytest.raises(HubError, match=f"mallory/names: the repository lists a file named .*{why}"):
        h.install_from_hub("mallory/names")
    assert not _outside(tmp_path) and Library().list() == []


def test_hostile_commit_and_etag_from_the_server_are_refused(hub, tmp_path):
    repo = hub.repos["alice/tiny-style-lora"]
    sha, files = repo.commits[-1]
    repo.commits[-1] = ("../../../escape", files)
    with pytest.raises(HubError, match="'../../../escape' as a commit id"):
        h.install_from_hub("alice/tiny-style-lora")
    repo.commits[-1] = (sha, files)
    hub.etags["adapter_config.json"] = ".."                  # blobs/.. is the repository's own folder
    with pytest.raises(HubError, match="adapter_config.json: the Hub sent no usable ETag"):
        h.install_from_hub("alice/tiny-style-lora")
    assert not _outside(tmp_path) and Library().list() == []
    assert not any(p.is_file() for p in storage_folder("alice/tiny-style-lora").glob("*"))


def test_hostile_names_from_the_user_are_refused_before_any_request(hub, tmp_path):
    hub.requests.clear()
    with pytest.raises(HubError, match="not a usable revision"):
        h.install_from_hub("alice/tiny-style-lora", revision="../../../escape")
    with pytest.raises(HubError, match="not a usable revision"):
        h.repo_details("alice/tiny-style-lora", revision="main\\..\\escape")
    with pytest.raises(HubError, match="not a valid repository id"):
        h.install_from_hub("../escape")
    with pytest.raises(HubError, match="absolute path"):
        h.download_files("dave/tiny-llama-GGUF", ["/tmp/escape.gguf"])
    with pytest.raises(HubError, match="'..' part"):
        h.download_files("dave/tiny-llama-GGUF", ["../../../escape.gguf"])
    assert hub.requests == [] and not _outside(tmp_path)
