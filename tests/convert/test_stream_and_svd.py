"""Building blocks: the atomic streaming GGUF writers and the SVD truncations."""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader

from adapters_backend.convert.svd import reduce_factors, truncate
from adapters_backend.gguf.tensors import can_encode, decode, encode
from adapters_backend.gguf.writer import DeclaredGGUFWriter, StreamedGGUFWriter


def _lora_kv(kv):
    kv.add_string("adapter.type", "lora")


def test_streamed_writer_round_trip_all_types(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"a.lora_a": rng.standard_normal((8, 64)).astype(np.float32),
              "a.lora_b": rng.standard_normal((96, 8)).astype(np.float32),
              "b.lora_a": rng.standard_normal((32, 64)).astype(np.float32)}
    for qtype, tol in ((Q.F32, 0), (Q.F16, 1e-3), (Q.BF16, 1e-2), (Q.Q8_0, 2e-2)):
        out = tmp_path / f"{qtype.name}.gguf"
        with StreamedGGUFWriter(out, "llama", list(arrays), _lora_kv) as w:
            for name, arr in arrays.items():
                w.add_tensor(name, arr, qtype if can_encode(qtype, arr.shape) else Q.F16)
            w.commit()
        r = GGUFReader(out)
        assert r.fields["adapter.type"].contents() == "lora"
        got = {t.name: decode(t.data, t.tensor_type, tuple(reversed(t.shape.tolist()))) for t in r.tensors}
        assert list(got) == list(arrays)
        for name, arr in arrays.items():
            assert got[name].shape == arr.shape
            np.testing.assert_allclose(got[name], arr, atol=tol * np.abs(arr).max() + 1e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{q}.gguf" for q in ("F32", "F16", "BF16", "Q8_0"))


def test_q8_0_needs_whole_blocks():
    assert can_encode(Q.Q8_0, (4, 64)) and not can_encode(Q.Q8_0, (64, 4))
    assert can_encode(Q.F16, (3, 5)) and not can_encode(Q.Q4_K, (4, 256))   # gguf-py cannot quantize K-quants


def test_an_error_mid_write_leaves_no_file(tmp_path):
    out = tmp_path / "out.gguf"
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="boom"):
        with StreamedGGUFWriter(out, "llama", ["x.lora_a", "x.lora_b"], _lora_kv) as w:
            w.add_tensor("x.lora_a", np.ones((2, 32), np.float32), Q.F32)
            raise RuntimeError("boom")
    assert out.read_bytes() == b"previous"              # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]   # no temp or spool files left


def test_streamed_writer_rewrites_the_header_and_checks_its_size(tmp_path):
    a = np.ones((4, 32), np.float32)
    meta = {"alpha": 0.0, "name": "x"}

    def kv(w):
        w.add_float32("adapter.lora.alpha", meta["alpha"])
        w.add_name(meta["name"])

    out = tmp_path / "ok.gguf"
    with StreamedGGUFWriter(out, "llama", ["t.lora_a"], kv) as w:
        w.add_tensor("t.lora_a", a, Q.F32)
        meta["alpha"] = 4.0                  # same size: the final header says 4
        w.commit()
    r = GGUFReader(out)
    assert r.fields["adapter.lora.alpha"].contents() == 4.0
    np.testing.assert_array_equal(r.tensors[0].data, a)
    assert list(r.tensors[0].shape) == [32, 4]

    bad = tmp_path / "bad.gguf"
    with pytest.raises(RuntimeError, match="reserved"):
        with StreamedGGUFWriter(bad, "llama", ["t.lora_a"], kv) as w:
            w.add_tensor("t.lora_a", a, Q.F32)
            meta["name"] = "a longer name"    # a string that grew cannot fit the reserved header
            w.commit()
    with pytest.raises(RuntimeError, match="out of order"):
        with StreamedGGUFWriter(bad, "llama", ["t.lora_a", "t.lora_b"], kv) as w:
            w.add_tensor("t.lora_b", a, Q.F32)
    with pytest.raises(RuntimeError, match="only 1 of 2"):
        with StreamedGGUFWriter(bad, "llama", ["t.lora_a", "t.lora_b"], kv) as w:
            w.add_tensor("t.lora_a", a, Q.F32)
            w.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.gguf"]


def test_declared_writer_checks_order_and_sizes(tmp_path):
    out = tmp_path / "m.gguf"
    a, b = np.arange(64, dtype=np.float32).reshape(2, 32), np.ones((1, 32), np.float32)
    with DeclaredGGUFWriter(out, "llama") as w:
        w.declare("a", a.shape, Q.F32, a.nbytes)
        w.declare("b", b.shape, Q.Q8_0, encode(b, Q.Q8_0).nbytes)
        w.begin()
        with pytest.raises(RuntimeError, match="out of order"):
            w.begin_tensor("b")
        w.begin_tensor("a")
        w.write_data(a[:1])
        w.write_data(a[1:])
        w.end_tensor()
        w.write("b", encode(b, Q.Q8_0))
        w.commit()
    r = GGUFReader(out)
    np.testing.assert_array_equal(r.tensors[0].data, a)
    np.testing.assert_allclose(decode(r.tensors[1].data, Q.Q8_0, (1, 32)), b, atol=1e-2)
    with pytest.raises(RuntimeError, match="declared"):
        with DeclaredGGUFWriter(tmp_path / "bad.gguf", "llama") as w:
            w.declare("a", a.shape, Q.F32, a.nbytes)
            w.begin()
            w.write("a", a[:1])
    assert not (tmp_path / "bad.gguf").exists()


def test_truncate_meets_the_error_with_the_smallest_rank():
    rng = np.random.default_rng(1)
    s = 2.0 ** -np.arange(20)                          # known spectrum
    u, _ = np.linalg.qr(rng.standard_normal((40, 20)))
    v, _ = np.linalg.qr(rng.standard_normal((30, 20)))
    delta = (u * s) @ v.T
    t = truncate(delta, max_error=1e-3)
    achieved = np.linalg.norm(delta - t.B @ t.A) / np.linalg.norm(delta)
    assert achieved <= 1e-3 and t.error == pytest.approx(achieved, rel=1e-3)
    shorter = truncate(delta, rank=t.rank - 1)
    assert np.linalg.norm(delta - shorter.B @ shorter.A) / np.linalg.norm(delta) > 1e-3
    assert truncate(np.zeros((4, 5)), 1e-3).rank == 1     # a zero delta still gives a (zero) pair


def test_reduce_factors_equals_svd_of_the_product():
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((24, 50)), rng.standard_normal((40, 24))
    t = reduce_factors(A, B, rank=6)
    dense = truncate((B @ A).astype(np.float32), rank=6)
    np.testing.assert_allclose(t.B @ t.A, dense.B @ dense.A, rtol=1e-3, atol=1e-3)
    assert t.error == pytest.approx(np.linalg.norm(B @ A - t.B @ t.A) / np.linalg.norm(B @ A), rel=1e-4)
    exact = reduce_factors(A, B, rank=24)
    np.testing.assert_allclose(exact.B @ exact.A, B @ A, atol=1e-4)
