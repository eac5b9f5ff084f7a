"""Read one base weight at a time, as float32, from a GGUF file or an HF safetensors folder.

DoRA needs the base weight of each adapted module (its delta depends on W), and so does merging.
Both sides are memory-mapped; only the requested tensor is read (and dequantized).

`gguf_weight(name)` gives the tensor in GGUF layout (numpy order, GGUF row order). For an HF folder
it is built from the checkpoint the way llama.cpp's converter would (Conv1D transposed, rows
transformed), so callers work in one space whatever the base is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..arch import transforms
from ..core.base_model import BaseModelInfo, checkpoint_shards
from ..errors import BaseModelError
from ..formats.safetensors_io import SafetensorsSource
from ..gguf.header import GGUFError
from ..gguf.tensors import TensorFile

_PREFIXES = ("", "model.", "transformer.")


class HFTensors:
    """Tensors of an HF safetensors checkpoint (single file or index + shards), by checkpoint key."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._sources: dict[Path, SafetensorsSource] = {}
        self.shards, weight_map = checkpoint_shards(self.folder)
        self.files: dict[str, Path] = weight_map if weight_map is not None else \
            {key: self.shards[0] for key in self.source(self.shards[0]).keys()}

    def source(self, path: Path) -> SafetensorsSource:
        if path not in self._sources:
            self._sources[path] = SafetensorsSource(path)
        return self._sources[path]

    def keys(self) -> list[str]:
        return list(self.files)

    def find(self, module: str, suffix: str = ".weight") -> str | None:
        """The checkpoint key of `module` + suffix, allowing for a dropped or added root prefix."""
        for prefix in _PREFIXES:
            for cand in (prefix + module, module.removeprefix(prefix) if prefix else module):
                if cand + suffix in self.files:
                    return cand + suffix
        return None

    def read(self, key: str) -> np.ndarray:
        try:
            return self.source(self.files[key]).read(key)
        except Exception as exc:  # report against the base model
            raise BaseModelError(self.files[key], f"cannot read tensor {key}: {exc}") from None

    def close(self) -> None:
        for s in self._sources.values():
            s.close()


class BaseWeights:
    """Base weights in GGUF layout for a GGUF file or an HF folder described by `info`."""

    def __init__(self, info: BaseModelInfo):
        self.info = info
        if info.path is None:
            raise BaseModelError(None, "the base model's weights are needed (DoRA, merge) but no file was given")
        # A split GGUF: a tensor may be in any of its parts.
        self.gguf = [TensorFile(p) for p in (info.path, *info.gguf_parts)] if info.kind == "gguf" else None
        self.hf = HFTensors(info.path) if info.kind == "hf" else None
        self._hf_by_gguf: dict[str, tuple[str, str, str]] | None = None

    def _hf_index(self) -> dict[str, tuple[str, str, str]]:
        """GGUF name → (checkpoint key, rule kind, transform) for an HF base."""
        if self._hf_by_gguf is None:
            out = {}
            for key in self.hf.keys():
                if not key.endswith(".weight"):
                    continue
                m = self.info._match_checkpoint_name(key.removesuffix(".weight"))
                if m is not None and m.gguf:
                    out[m.gguf] = (key, m.rule.kind, m.rule.transform)
            self._hf_by_gguf = out
        return self._hf_by_gguf

    def gguf_weight(self, gguf: str) -> np.ndarray:
        """The base tensor `gguf` (".weight" optional) as float32 in GGUF layout."""
        name = gguf.removesuffix(".weight")
        if self.gguf is not None:
            part = next((f for f in self.gguf if name + ".weight" in f), None)
            if part is None:
                raise BaseModelError(self.info.path, f"no tensor {name}.weight in the model")
            try:
                return part.read(name + ".weight")
            except GGUFError as exc:
                raise BaseModelError(part.path, str(exc)) from None
        entry = self._hf_index().get(name)
        if entry is None:
            raise BaseModelError(self.info.path, f"no checkpoint tensor for {name}")
        key, kind, transform = entry
        w = self.hf.read(key)
        if kind == "conv1d":
            w = np.ascontiguousarray(w.T)
        return transforms.apply(transform, w, self.info.transform_hparams())

    def close(self) -> None:
        if self.hf is not None:
            self.hf.close()
        for part in self.gguf or ():
            part.close()
