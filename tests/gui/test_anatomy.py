"""Adapter anatomy: update norms from the factors equal the norms of the full ΔW, and the heat map
paints them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters_backend.core.adapter import Adapter, ModuleDelta
from adapters_backend.formats.safetensors_io import DictSource
from adapters_backend.report.anatomy import compute_anatomy, lowrank_fro_norm

# Qt warnings fail the test, except the offscreen platform's note about size hints of dialogs.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

OUT, IN, R = 24, 20, 4


def _mod(name, variant, roles, scale, rank=R):
    return ModuleDelta(name=name, variant=variant, out_features=OUT, in_features=IN, rank=rank, alpha=None,
                       scale=scale, roles=roles)


@pytest.fixture
def mixed_adapter():
    rng = np.random.default_rng(0)
    t, mods, dense = {}, {}, {}

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    # LoRA on layer 0 q_proj and layer 1 q_proj (different scales), AdaLoRA on layer 0 v_proj,
    # LoHa on layer 1 v_proj, LoKr (one factor low-rank) on layer 2 o_proj, a full replacement.
    for layer, scale in ((0, 2.0), (1, 0.5)):
        n = f"model.layers.{layer}.self_attn.q_proj"
        t[f"{n}.A"], t[f"{n}.B"] = arr(R, IN), arr(OUT, R)
        mods[n] = _mod(n, "lora", {"A": f"{n}.A", "B": f"{n}.B"}, scale)
        dense[n] = scale * t[f"{n}.B"] @ t[f"{n}.A"]
    n = "model.layers.0.self_attn.v_proj"
    t[f"{n}.A"], t[f"{n}.E"], t[f"{n}.B"] = arr(R, IN), arr(R, 1), arr(OUT, R)
    mods[n] = _mod(n, "adalora", {"A": f"{n}.A", "E": f"{n}.E", "B": f"{n}.B"}, 1.5)
    dense[n] = 1.5 * t[f"{n}.B"] @ (t[f"{n}.E"] * t[f"{n}.A"])
    n = "model.layers.1.self_attn.v_proj"
    for k, shape in (("w1a", (OUT, R)), ("w1b", (R, IN)), ("w2a", (OUT, R)), ("w2b", (R, IN))):
        t[f"{n}.{k}"] = arr(*shape)
    mods[n] = _mod(n, "loha", {k: f"{n}.{k}" for k in ("w1a", "w1b", "w2a", "w2b")}, 0.25)
    dense[n] = 0.25 * (t[f"{n}.w1a"] @ t[f"{n}.w1b"]) * (t[f"{n}.w2a"] @ t[f"{n}.w2b"])
    n = "model.layers.2.self_attn.o_proj"
    t[f"{n}.w1"], t[f"{n}.w2a"], t[f"{n}.w2b"] = arr(4, 4), arr(6, 2), arr(2, 5)
    mods[n] = _mod(n, "lokr", {"w1": f"{n}.w1", "w2a": f"{n}.w2a", "w2b": f"{n}.w2b"}, 0.75, rank=2)
    dense[n] = 0.75 * np.kron(t[f"{n}.w1"], t[f"{n}.w2a"] @ t[f"{n}.w2b"])
    n = "lm_head"
    t[f"{n}.weight"] = arr(OUT, IN)
    mods[n] = _mod(n, "full", {"weight": f"{n}.weight"}, 1.0, rank=0)
    adapter = Adapter(path=Path("mem"), format_id="test", modules=mods, source=DictSource(t))
    return adapter, dense


def test_lowrank_norm_matches_dense():
    rng = np.random.default_rng(1)
    b, a = rng.standard_normal((300, 8)), rng.standard_normal((8, 200))
    assert lowrank_fro_norm(b, a) == pytest.approx(np.linalg.norm(b @ a), rel=1e-9)


def test_anatomy_norms_equal_full_matrix_norms(mixed_adapter):
    adapter, dense = mixed_adapter
    a = compute_anatomy(adapter)
    assert a.layers == [0, 1, 2, None]
    assert a.modules == ["q_proj", "v_proj", "o_proj", "lm_head"]
    seen = 0
    for i in range(len(a.layers)):
        for j in range(len(a.modules)):
            name = a.full_names[i][j]
            if name in dense:
                assert a.norms[i][j] == pytest.approx(float(np.linalg.norm(dense[name])), rel=1e-5), name
                seen += 1
    assert seen == len(dense)
    assert a.skipped == ["lm_head"]            # a replacement, not an update: no norm, shown greyed
    assert a.max_norm == pytest.approx(max(np.linalg.norm(d) for d in dense.values()), rel=1e-5)


def test_anatomy_view_paints_cells(qtbot, mixed_adapter):
    from PySide6.QtGui import QColor

    from desktop_app.widgets.anatomy_view import AnatomyView, heat_colour

    adapter, _ = mixed_adapter
    view = AnatomyView()
    qtbot.addWidget(view)
    anatomy = compute_anatomy(adapter)
    view.set_anatomy(anatomy)
    view.resize(view.sizeHint())
    img = view.grab().toImage()
    # The strongest cell is painted with the top colour of the scale.
    i, j = max(((i, j) for i in range(len(anatomy.layers)) for j in range(len(anatomy.modules))
                if anatomy.norms[i][j] is not None), key=lambda c: anatomy.norms[c[0]][c[1]])
    x = view._label_width() + j * view._cell_w() + view._cell_w() // 2
    y = view._header_height() + i * 18 + 9
    dpr = img.devicePixelRatio()
    assert QColor(img.pixel(int(x * dpr), int(y * dpr))) == heat_colour(1.0)
    assert "strongest" in view.accessibleDescription()
