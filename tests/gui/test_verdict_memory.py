"""The library is checked against the model at every model load; a verdict reached before in this run
is remembered by the adapter's and the model's file identities, so going back to a model costs a few
stats per adapter. A changed file, another engine, and an adapter that could not be read are checked
again."""
from __future__ import annotations

import os
import shutil
from collections import OrderedDict

from adapters_backend import demo
from adapters_backend.core import compat
from desktop_app import library_access


def test_a_verdict_is_remembered_until_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(library_access, "_VERDICTS", OrderedDict(), raising=False)
    checked = []
    real = compat.check_compatibility
    monkeypatch.setattr(compat, "check_compatibility", lambda *a, **k: (checked.append(a[2]), real(*a, **k))[1])
    adapter = shutil.copy(demo.demo_lora_gguf("shout"), tmp_path / "shout.gguf")
    model = str(demo.demo_model_path())

    first = library_access.verdict_for(adapter, model, "llama.cpp")
    assert first.usable and first.status == "compatible"
    assert library_access.verdict_for(adapter, model, "llama.cpp") == first and len(checked) == 1
    library_access.verdict_for(adapter, model, "torch")                  # another engine: its own check
    assert len(checked) == 2
    st = os.stat(adapter)
    os.utime(adapter, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))   # replaced in place
    assert library_access.verdict_for(adapter, model, "llama.cpp") == first and len(checked) == 3

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 20)
    for _ in range(2):
        assert not library_access.verdict_for(broken, model, "llama.cpp").usable
    assert len(checked) == 5                                              # not remembered
    assert library_access.verdict_for(tmp_path / "gone.gguf", model, "llama.cpp").status == "incompatible"
