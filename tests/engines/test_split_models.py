"""Split GGUF models (PREFIX-00001-of-0000N.gguf …): the tensor tables of all parts are read, so an
adapter is checked against the whole model and runs on it exactly as on the same model in one file;
a part opened alone, a missing part, renamed parts and a hostile part count are clear errors."""
from __future__ import annotations

import shutil

import engine_models as em
import gguf
import numpy as np
import pytest

from adapters_backend.core.base_model import load_base_model
from adapters_backend.core.compat import check_compatibility
from adapters_backend.engines.base import ActiveAdapter
from adapters_backend.errors import BaseModelError


@pytest.fixture(scope="module")
def split(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    first = em.write_base(folder / "tiny.gguf", tiny.weights, tiny.vocab, split_max_tensors=8)
    return first, sorted(folder.glob("tiny-*-of-*.gguf"))


def test_a_split_model_is_read_whole_and_runs_an_adapter_as_the_single_file_does(tiny, split, make_engine):
    first, parts = split
    assert len(parts) == 3 and parts[0] == first
    whole, single = load_base_model(first), load_base_model(tiny.base)
    assert whole.tensor_shapes == single.tensor_shapes and whole.gguf_parts == parts[1:]
    assert check_compatibility(tiny.l2_path, whole).verdict == "compatible"   # its tensors are in later parts
    mix = [ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(tiny.l2_path, -0.4)]
    got, want = make_engine(first, logits_all=True), make_engine(tiny.base, logits_all=True)
    toks = [1, 450, 4996, 17354, 1701, 29916]
    for e in (got, want):
        e.set_adapters(mix)
    a, b = got.next_token_logits(toks), want.next_token_logits(toks)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_base_weights_come_from_the_part_that_holds_them(tiny, split):
    from adapters_backend.convert.base_weights import BaseWeights
    first, parts = split
    last_part = gguf.GGUFReader(str(parts[-1]))
    name = last_part.tensors[0].name
    weights = BaseWeights(load_base_model(first))
    try:
        assert np.array_equal(weights.gguf_weight(name), tiny.weights[name])
    finally:
        weights.close()


def test_merging_into_a_split_model_says_to_join_the_parts(tiny, split, tmp_path):
    from adapters_backend.merge.common import MergeError
    from adapters_backend.merge.gguf_merge import merge_into_gguf
    with pytest.raises(MergeError, match="split in 3 parts.*join the parts first"):
        merge_into_gguf(split[0], [(tiny.l1_path, 1.0)], tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_broken_split_models_are_clear_errors(tiny, split, tmp_path):
    first, parts = split
    with pytest.raises(BaseModelError, match=r"part 2 of 3 of a split model: open its first part"):
        load_base_model(parts[1])
    alone = tmp_path / "alone"
    alone.mkdir()
    for p in parts[:2]:
        shutil.copy(p, alone)
    with pytest.raises(BaseModelError, match=r"part tiny-00003-of-00003.gguf of this split model is missing"):
        load_base_model(alone / first.name)
    renamed = tmp_path / "renamed.gguf"
    shutil.copy(first, renamed)
    with pytest.raises(BaseModelError, match="must keep the names llama.cpp gives them"):
        load_base_model(renamed)
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    shutil.copy(parts[0], swapped / parts[0].name)
    shutil.copy(parts[2], swapped / parts[1].name)           # part 3's file under part 2's name
    shutil.copy(parts[2], swapped / parts[2].name)
    with pytest.raises(BaseModelError, match="does not say it is part 2 of 3"):
        load_base_model(swapped / first.name)


@pytest.mark.parametrize("count", [2**31, 0, -1, "3"])
def test_a_hostile_part_count_is_refused_before_any_part_is_looked_for(tiny, tmp_path, count):
    path = tmp_path / "model-00001-of-00002.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    if isinstance(count, str):
        w.add_string("split.count", count)
    else:
        w.add_int64("split.count", count)
    w.add_uint16("split.no", 0)
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_tensor("token_embd.weight", np.ones((8, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(BaseModelError, match="split.count .* is not a number of parts"):
        load_base_model(path)


def _part(path, no: int, names: list[str], tensors_count: int | None = None):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint16("split.no", no)
    w.add_uint16("split.count", 2)
    if no == 0:
        w.add_int32("split.tensors.count", tensors_count)
        w.add_block_count(1)
        w.add_embedding_length(64)
    for name in names:
        w.add_tensor(name, np.ones((8, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("second, announced, problem", [
    (["token_embd.weight"], 2, "tensor token_embd.weight is in two parts of this split model"),
    (["output.weight"], 5, "the parts of this split model hold 2 tensors, the first part says 5"),
])
def test_parts_that_do_not_add_up_are_refused(tmp_path, second, announced, problem):
    first = tmp_path / "m-00001-of-00002.gguf"
    _part(first, 0, ["token_embd.weight"], announced)
    _part(tmp_path / "m-00002-of-00002.gguf", 1, second)
    with pytest.raises(BaseModelError, match=problem):
        load_base_model(first)


def test_caches_notice_a_later_part_that_changed(split, tmp_path):
    """A repository update can replace one part of a split model and leave the first as it was: the
    conversion cache (which reads base weights for dense adapters) and the compatibility checker's base
    cache must not go on with what the old part said."""
    import os

    from adapters_backend.convert.cache import base_identity
    from adapters_backend.core.compat import _load_base_cached
    first_src, parts = split
    for p in parts:
        shutil.copyfile(p, tmp_path / p.name)
    first, last = tmp_path / parts[0].name, tmp_path / parts[-1].name
    identity = base_identity(load_base_model(first), needs_weights=True)
    cached = _load_base_cached(first)
    assert _load_base_cached(first) is cached                      # read once while nothing changes

    data = bytearray(last.read_bytes())
    data[-1] ^= 0x01                                               # a weight of the last part, same size
    last.write_bytes(bytes(data))
    os.utime(last, ns=(last.stat().st_atime_ns, last.stat().st_mtime_ns + 10**9))   # coarse clocks
    assert base_identity(load_base_model(first), needs_weights=True) != identity
    again = _load_base_cached(first)
    assert again is not cached and again.tensor_shapes == cached.tensor_shapes
    assert base_identity(load_base_model(first), needs_weights=False) == \
        base_identity(load_base_model(first_src), needs_weights=False)    # shapes alone: the same model
