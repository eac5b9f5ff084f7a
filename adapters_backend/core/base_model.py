"""What LoRA Deck needs to know about a base model, read from headers only.

`load_base_model(path)` accepts a GGUF model file (metadata + tensor infos via gguf's GGUFReader,
which memory-maps and never reads tensor data) or a Hugging Face model folder (config.json + the
safetensors headers of model.safetensors or the shards of model.safetensors.index.json). The result,
`BaseModelInfo`, answers "which modules does this base have, and what shape is each" in HF module
names and Linear (out, in) orientation, whatever the file kind, so the compatibility check can run on
metadata alone (also on Hub metadata: see `base_info_from_hf`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..arch.name_map import NameMatch, TensorNameMap, hf_module_names
from ..arch.registry import all_archs, find_archs
from ..arch.spec import ArchSpec
from ..errors import AdapterFormatError, BaseModelError
from ..json_input import JsonInputError, read_json_file
from ..paths import unsafe_name_reason

_PREFIXES = ("", "transformer.", "model.")   # checkpoints sometimes drop or add the root module name
# Counts a model file states about itself, checked before any work proportional to them (module
# names are built per block and per expert). Real models: up to ~200 blocks, ~512 experts.
MAX_LAYERS = 4096
MAX_EXPERTS = 4096
MAX_EXPERT_MODULES = 1 << 18          # blocks × experts


@dataclass
class BaseModelInfo:
    path: Path | None
    kind: str                                   # "gguf" | "hf"
    arch: ArchSpec | None
    arch_name: str                              # as the file says: GGUF general.architecture or HF model_type
    n_layers: int
    hidden: int
    n_head: int
    n_head_kv: int
    vocab: int
    hparams: dict = field(default_factory=dict)   # HF config.json, or the GGUF's scalar metadata
    tensor_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # file names, numpy order
    upstream_ids: list[str] = field(default_factory=list)   # Hub repo ids this base derives from
    name: str | None = None
    head_dim: int = 0
    intermediate: int = 0                       # per expert for MoE models
    n_experts: int = 0
    tied: bool = False                          # lm_head shares the token embeddings (no own tensor)
    file_type: int | None = None                # GGUF general.file_type (llama_ftype)
    tensor_types: dict[str, str] = field(default_factory=dict)   # GGUF tensor -> GGML type name ("F16", "Q4_K")
    warnings: list[str] = field(default_factory=list)
    gguf_parts: list[Path] = field(default_factory=list)   # a split GGUF's parts after the first (`path`)

    def __post_init__(self) -> None:
        self._map = TensorNameMap(self.arch, self.n_layers, self.n_experts or None) if self.arch else None
        self._gguf: dict[str, tuple[int, ...]] = self._gguf_space()

    # -- names -----------------------------------------------------------------------------------
    @property
    def name_map(self) -> TensorNameMap | None:
        return self._map

    def match(self, hf_module: str) -> NameMatch | None:
        return self._map.match(hf_module) if self._map else None

    def transform_hparams(self) -> dict:
        """What the row transforms need (adapters_backend.arch.transforms)."""
        return {"n_head": self.n_head, "n_head_kv": self.n_head_kv, "hidden": self.hidden,
                "head_dim": self.head_dim}

    def rows(self, key: str) -> int:
        """Row count of one block of a fused module: "q", "kv", "ff", "hidden" (0 if unknown)."""
        return {"q": self.n_head * self.head_dim, "kv": self.n_head_kv * self.head_dim,
                "ff": self.intermediate, "hidden": self.hidden}.get(key, 0)

    # -- shapes ----------------------------------------------------------------------------------
    def _gguf_space(self) -> dict[str, tuple[int, ...]]:
        """Every tensor as llama.cpp would name it (no ".weight"), shape in numpy/Linear order."""
        if self.kind == "gguf":
            return {n.removesuffix(".weight"): s for n, s in self.tensor_shapes.items() if n.endswith(".weight")}
        if self._map is None:
            return {}
        out: dict[str, tuple[int, ...]] = {}
        experts: dict[str, dict[int, tuple[int, ...]]] = {}
        for key, shape in self.tensor_shapes.items():
            stem = key.removesuffix(".weight")
            m = self._match_checkpoint_name(stem)
            if m is None or not m.gguf:
                continue
            shape = self._linear_shape(shape, m.rule.kind)
            if m.rule.kind == "expert":
                experts.setdefault(m.gguf, {})[m.xid] = shape
            else:
                out[m.gguf] = shape
        for name, per in experts.items():   # per-expert checkpoints: stack like the converter does
            if name not in out and len({per[x] for x in per}) == 1:
                out[name] = (max(per) + 1, *next(iter(per.values())))
        return out

    def _match_checkpoint_name(self, stem: str) -> NameMatch | None:
        for prefix in _PREFIXES:
            for candidate in (prefix + stem, stem.removeprefix(prefix) if prefix else stem):
                m = self._map.match(candidate)
                if m is not None:
                    return m
        return None

    @staticmethod
    def _linear_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
        # GPT-2 Conv1D stores (in, out); everything else is already (out, in) / (E, out, in).
        return tuple(reversed(shape)) if kind == "conv1d" and len(shape) == 2 else tuple(shape)

    def gguf_shape(self, gguf_name: str) -> tuple[int, ...] | None:
        """Shape (numpy order) of a GGUF tensor ("blk.0.attn_q", ".weight" optional) the base has or
        would have once converted; None if absent."""
        return self._gguf.get(gguf_name.removesuffix(".weight"))

    def has_gguf_tensor(self, gguf_name: str) -> bool:
        return self.gguf_shape(gguf_name) is not None

    def _checkpoint_shape(self, hf_module: str, m: NameMatch | None) -> tuple[int, ...] | None:
        """HF folders: the module's own weight in the checkpoint header, under any of its names."""
        names = [hf_module]
        if m is not None:
            for t in (m.rule.hf, *m.rule.aliases):
                names.append(t.replace("{bid}", str(m.bid)).replace("{xid}", str(m.xid)))
        for n in names:
            for prefix in _PREFIXES:
                for cand in (prefix + n, n.removeprefix(prefix) if prefix else n):
                    for key in (cand + ".weight", cand):
                        if key in self.tensor_shapes:
                            return self._linear_shape(self.tensor_shapes[key], m.rule.kind if m else "linear")
        return None

    def module_shape(self, hf_module: str) -> tuple[int, int] | None:
        """(out, in) of an HF module in Linear orientation ((vocab, dim) for embeddings; one expert's
        (out, in) for MoE experts), or None when the base has no such module.

        Fused layouts are resolved both ways: q_proj on a base with a fused attn_qkv returns q's rows
        (from hparams); a fused HF module (gate_up_proj) on a split base returns the parts' sum.
        A tied lm_head returns None (it has no tensor of its own); see `tied`.
        """
        m = self.match(hf_module)
        if self.kind == "hf":
            shape = self._checkpoint_shape(hf_module, m)
            if shape is not None:
                return self._per_expert(shape, m)
        if m is None or not m.gguf:
            return None
        shape = self.gguf_shape(m.gguf)
        if shape is not None:
            return self._per_expert(shape, m)
        # A part of a fused GGUF tensor (separate q/k/v onto attn_qkv).
        container = self._map.fused_containing(m.gguf)
        if container is not None:
            fused_name, index, parts = container
            fused = self.gguf_shape(fused_name)
            if fused is not None:
                rows = self.rows(parts[index][1]) if parts[index][1] else fused[-2] // len(parts)
                return (rows, fused[-1]) if rows else None
        # A fused HF module onto split GGUF tensors (transformers ≥5 Mixtral gate_up_proj).
        parts = self._map.fused_parts(m.gguf)
        if parts:
            shapes = [self.gguf_shape(p) for p, _ in parts]
            if all(s is not None for s in shapes) and len({s[-1] for s in shapes}) == 1:
                return (sum(s[-2] for s in shapes), shapes[0][-1])
        return None

    def _per_expert(self, shape: tuple[int, ...], m: NameMatch | None) -> tuple[int, int] | None:
        if len(shape) == 3:
            if m is not None and m.xid is not None and m.xid >= shape[0]:
                return None
            return (int(shape[1]), int(shape[2]))
        if len(shape) == 2:
            return (int(shape[0]), int(shape[1]))
        return None

    def module_names(self) -> list[str]:
        """HF module paths (the tables' main names, no aliases) this base has a shape for."""
        if self.arch is None:
            return []
        names = hf_module_names(self.arch, self.n_layers, self.n_experts, aliases=False)
        return [n for n in names if self.module_shape(n) is not None]

    def full_precision(self, gguf_name: str) -> bool:
        """True when the base stores this GGUF tensor as F32 (a fused LoRA for it is then kept in F32 too)."""
        return self.tensor_types.get(gguf_name, "F32") == "F32"

    def summary(self) -> str:
        arch = self.arch.name if self.arch else self.arch_name
        return (f"{self.name or (self.path.name if self.path else 'base model')} ({arch}, {self.n_layers} layers, "
                f"hidden {self.hidden}, vocab {self.vocab})")


# ---------------------------------------------------------------------------------------------------
def _supported(kind: str) -> str:
    archs = all_archs()
    if kind == "gguf":
        return "GGUF architectures " + ", ".join(sorted({a.gguf_arch for a in archs}))
    return "model types " + ", ".join(sorted({t for a in archs for t in a.hf_model_types}))


def _int(value, default: int = 0) -> int:
    """A count or size from metadata; `default` when absent or not a number (infinities and NaN
    included: `_check_finite` reports those for the keys that matter)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, (list, tuple)):
        value = max((v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)
                     and math.isfinite(v)), default=default)
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError, OverflowError):
        return default


def _check_finite(path: Path | None, values: Mapping, keys) -> None:
    """A file's numbers must be numbers: an infinite or NaN count or size is refused, naming the key."""
    for key in keys:
        value = values.get(key)
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise BaseModelError(path, f"{key} is {v}; it must be a finite number")


def check_counts(path: Path | None, where: str, n_layers: int, n_experts: int, n_tensors: int | None = None) -> None:
    """Block and expert counts within sane limits (and, for a file with its tensors, no more blocks
    than tensors), before anything builds names per block and expert."""
    if n_layers > MAX_LAYERS or (n_tensors is not None and n_layers > n_tensors):
        raise BaseModelError(path, f"{where} claims {n_layers} layers"
                                   + (f" but holds {n_tensors} tensors" if n_tensors is not None
                                      and n_layers <= MAX_LAYERS else f" (at most {MAX_LAYERS} are supported)"))
    if n_experts < 0 or n_experts > MAX_EXPERTS or n_layers * n_experts > MAX_EXPERT_MODULES:
        raise BaseModelError(path, f"{where} claims {n_experts} experts in each of {n_layers} layers "
                                   f"(at most {MAX_EXPERTS} experts and {MAX_EXPERT_MODULES} in all are supported)")


def _hp(config: Mapping, spec: ArchSpec | None, key: str, fallback: str | None = None):
    """Look up `key` of the spec's hparams mapping in config ("a|b" alternatives, dotted paths)."""
    names = (spec.hparams.get(key) if spec else None) or fallback
    if not names:
        return None
    for name in names.split("|"):
        obj = config
        for part in name.split("."):
            obj = obj.get(part) if isinstance(obj, Mapping) else None
        if obj is not None:
            return obj
    return None


_HF_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/(?:models/)?([\w.\-]+/[\w.\-]+)/?$")


def _repo_id(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    m = _HF_URL.match(url.strip())
    return m.group(1) if m else None


def _choose(specs: list[ArchSpec], n_experts: int) -> ArchSpec | None:
    """Several tables share a GGUF arch ("llama": Llama, Mistral, Mixtral): MoE bases pick a table with
    expert modules, dense bases one without; ties go to the first (built-ins first)."""
    if not specs:
        return None
    def is_moe(s: ArchSpec) -> bool:
        return any(r.kind in ("expert", "experts") for r in s.modules)
    preferred = [s for s in specs if is_moe(s) == (n_experts > 0)]
    return (preferred or specs)[0]


_GGUF_COUNT_KEYS = ("block_count", "embedding_length", "attention.head_count", "attention.head_count_kv",
                    "attention.key_length", "expert_count", "expert_feed_forward_length", "feed_forward_length",
                    "vocab_size")


def load_gguf_base(path: Path, need_table: bool = True) -> BaseModelInfo:
    """A GGUF model's facts. With `need_table=False` an architecture LoRA Deck has no table for still
    loads (arch None, GGUF tensor names only): llama.cpp runs many more families than the tables
    describe, and a llama.cpp LoRA GGUF is checked against it by tensor names and shapes alone."""
    # The bounded header reader: gguf-py's GGUFReader builds an object per vocabulary entry (seconds on
    # a real model); only scalars, a few small arrays and the tensor shapes are needed here.
    from ..gguf.header import read_header
    from ..gguf.splits import all_tensors, read_other_parts

    def wanted(key: str) -> bool:
        return key.startswith("general.") or key.endswith(("head_count", "head_count_kv"))

    try:
        head = read_header(path, keep_array=wanted)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise BaseModelError(path, f"not a readable GGUF file: it is damaged or incomplete ({exc})") from None
    meta: dict[str, object] = dict(head.metadata)
    array_len: dict[str, int] = dict(head.array_lengths)
    try:
        parts = read_other_parts(path, meta)
        tensors = all_tensors(head, parts)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise BaseModelError(path, str(exc)) from None
    shapes = {name: tuple(int(d) for d in info.shape) for name, info in tensors.items()}
    types = {name: info.type_name for name, info in tensors.items()}

    if meta.get("general.type") == "adapter":
        raise BaseModelError(path, "this GGUF is a LoRA adapter, not a model (general.type = 'adapter'); load the "
                                   "model it was made for, then add it as an adapter")
    arch_name = meta.get("general.architecture")
    if not isinstance(arch_name, str) or not arch_name:
        raise BaseModelError(path, "GGUF has no general.architecture: not a model file")
    _check_finite(path, meta, [f"{arch_name}.{k}" for k in _GGUF_COUNT_KEYS] + ["general.base_model.count",
                                                                              "general.file_type"])
    n_experts = _int(meta.get(f"{arch_name}.expert_count"))
    spec = _choose(find_archs(gguf_arch=arch_name), n_experts)
    if spec is None and need_table:
        raise BaseModelError(path, f"unsupported architecture '{arch_name}'. Supported: {_supported('gguf')}")

    def key(k: str):
        return meta.get(f"{arch_name}.{k}")

    hidden = _int(key("embedding_length"))
    n_head = _int(key("attention.head_count"))
    n_head_kv = _int(key("attention.head_count_kv"), n_head) or n_head
    n_layers = _int(key("block_count"))
    embd = shapes.get("token_embd.weight")
    vocab = (array_len.get("tokenizer.ggml.tokens") or _int(key("vocab_size"))
             or (embd[0] if embd and len(embd) == 2 else 0))
    if n_layers <= 0 or hidden <= 0:
        raise BaseModelError(path, f"GGUF metadata lacks {arch_name}.block_count / {arch_name}.embedding_length")
    check_counts(path, "the GGUF metadata", n_layers, n_experts, n_tensors=len(shapes))
    head_dim = _int(key("attention.key_length")) or (hidden // n_head if n_head else 0)
    intermediate = (_int(key("expert_feed_forward_length")) if n_experts else 0) or _int(key("feed_forward_length"))

    upstream: list[str] = []
    # Each entry has its own keys: a count beyond the number of keys names nothing more.
    for i in range(min(_int(meta.get("general.base_model.count")), len(meta))):
        rid = _repo_id(meta.get(f"general.base_model.{i}.repo_url"))
        if rid and rid not in upstream:
            upstream.append(rid)
    for k in ("general.source.repo_url", "general.source.huggingface.repository"):
        rid = _repo_id(meta.get(k)) or (meta.get(k) if k.endswith("repository") and isinstance(meta.get(k), str)
                                        else None)
        if rid and rid not in upstream:
            upstream.append(rid)

    info = BaseModelInfo(
        path=path, kind="gguf", arch=spec, arch_name=arch_name, n_layers=n_layers, hidden=hidden,
        n_head=n_head, n_head_kv=n_head_kv, vocab=int(vocab), hparams=meta, tensor_shapes=shapes,
        upstream_ids=upstream, name=meta.get("general.name") if isinstance(meta.get("general.name"), str) else None,
        head_dim=head_dim, intermediate=intermediate, n_experts=n_experts,
        tied="output.weight" not in shapes, file_type=_int(meta.get("general.file_type"), -1),
        tensor_types=types, gguf_parts=[part.path for part in parts],
    )
    if info.file_type == -1:
        info.file_type = None
    if embd and len(embd) == 2 and vocab and embd[0] != vocab:
        info.warnings.append(f"token list has {vocab} entries but token_embd has {embd[0]} rows")
    return info


_HF_COUNT_KEYS = (("n_layers", "num_hidden_layers"), ("hidden", "hidden_size"), ("n_head", "num_attention_heads"),
                  ("n_head_kv", "num_key_value_heads"), ("vocab", "vocab_size"), ("head_dim", "head_dim"),
                  ("intermediate", "intermediate_size"), ("n_experts", None))   # (spec.hparams key, default name)


def base_info_from_hf(config: Mapping, tensor_shapes: Mapping[str, tuple[int, ...]] | None = None,
                      path: Path | None = None, name: str | None = None,
                      upstream_ids: list[str] | None = None) -> BaseModelInfo:
    """BaseModelInfo from an HF config dict and checkpoint tensor shapes (numpy order, as in the
    safetensors header) — a local folder or Hub metadata alike."""
    if not isinstance(config, Mapping):
        raise BaseModelError(path, "config.json is not a JSON object")
    text = config.get("text_config")
    if isinstance(text, Mapping) and "model_type" in text and not config.get("num_hidden_layers"):
        config = {**text, "architectures": config.get("architectures")}
    model_type = config.get("model_type")
    declared = config.get("architectures")
    classes = [c for c in declared if isinstance(c, str)] if isinstance(declared, list) else []
    spec = None
    if isinstance(model_type, str):
        found = find_archs(model_type=model_type)
        spec = found[0] if found else None
    for cls in classes:
        if spec is None:
            found = find_archs(hf_class=cls)
            spec = found[0] if found else None
    arch_name = model_type if isinstance(model_type, str) else (classes[0] if classes else "")
    if spec is None:
        raise BaseModelError(path, f"unsupported architecture '{arch_name or 'unknown'}'"
                                   f"{' (' + ', '.join(classes) + ')' if classes else ''}. Supported: {_supported('hf')}")
    stated = {(spec.hparams.get(k) or fallback): _hp(config, spec, k, fallback) for k, fallback in _HF_COUNT_KEYS
              if spec.hparams.get(k) or fallback}
    _check_finite(path, stated, list(stated))
    n_layers = _int(_hp(config, spec, "n_layers", "num_hidden_layers"))
    hidden = _int(_hp(config, spec, "hidden", "hidden_size"))
    n_head = _int(_hp(config, spec, "n_head", "num_attention_heads"))
    n_head_kv = _int(_hp(config, spec, "n_head_kv", "num_key_value_heads"), n_head) or n_head
    vocab = _int(_hp(config, spec, "vocab", "vocab_size"))
    if n_layers <= 0 or hidden <= 0:
        raise BaseModelError(path, f"config.json lacks the layer count or hidden size for {spec.name}")
    head_dim = _int(_hp(config, spec, "head_dim", "head_dim")) or (hidden // n_head if n_head else 0)
    intermediate = _int(_hp(config, spec, "intermediate", "intermediate_size")) or 4 * hidden
    n_experts = _int(_hp(config, spec, "n_experts", None))
    check_counts(path, "config.json", n_layers, n_experts)
    shapes = {k: tuple(int(d) for d in v) for k, v in (tensor_shapes or {}).items()}
    tie = _hp(config, spec, "tie", "tie_word_embeddings")
    tied = bool(spec.tied_embeddings_default if tie is None else tie)
    if shapes and not any(k in shapes for k in ("lm_head.weight", "lm_head.linear.weight")):
        tied = True   # no lm_head tensor in the checkpoint: the model reuses the embeddings
    return BaseModelInfo(
        path=path, kind="hf", arch=spec, arch_name=arch_name, n_layers=n_layers, hidden=hidden, n_head=n_head,
        n_head_kv=n_head_kv, vocab=vocab, hparams=dict(config), tensor_shapes=shapes,
        upstream_ids=list(upstream_ids or []), name=name or config.get("_name_or_path") or None,
        head_dim=head_dim, intermediate=intermediate, n_experts=n_experts, tied=tied,
    )


def checkpoint_shards(folder: Path) -> tuple[list[Path], dict[str, Path] | None]:
    """The safetensors files of an HF checkpoint folder, and (sharded) which file holds each tensor.

    The one reader of model.safetensors.index.json: every shard must be a file directly in `folder`
    (an index is input like any other: a name such as ../../x must not reach outside). The check is
    on the name, one plain path component: in the Hugging Face cache every shard is a symbolic link
    into ../../blobs, which is where it is meant to lead."""
    folder = Path(folder)
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if not index.is_file():
        if single.is_file():
            return [single], None
        raise BaseModelError(folder, "no model.safetensors or model.safetensors.index.json "
                                     "(only safetensors checkpoints are read)")
    try:
        data = read_json_file(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
    except (OSError, JsonInputError) as exc:
        raise BaseModelError(index, f"cannot read the safetensors index ({exc})") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise BaseModelError(index, "the safetensors index has no valid weight_map")
    files = {}
    for shard in sorted(set(weight_map.values())):
        problem = unsafe_name_reason(shard)
        if problem is not None:
            raise BaseModelError(index, f"shard name {shard!r} is not a file name inside the model folder: {problem}")
        if not (folder / shard).is_file():
            raise BaseModelError(folder, f"shard {shard} listed in the index is missing")
        files[shard] = folder / shard
    return list(files.values()), {key: files[shard] for key, shard in weight_map.items()}


def checkpoint_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in an HF checkpoint folder, from the safetensors headers (no tensor data read)."""
    from ..formats.safetensors_io import check_covered, read_safetensors_header
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in checkpoint_shards(folder)[0]:
        try:
            tensors, _meta, start = read_safetensors_header(shard)
            check_covered(shard, tensors, start)        # as safetensors, which transformers and merges open it with
        except AdapterFormatError as exc:
            raise BaseModelError(folder, f"{shard.name}: {exc.problem}") from None
        shapes.update({k: tuple(v["shape"]) for k, v in tensors.items()})
    return shapes


def load_hf_base(folder: Path) -> BaseModelInfo:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise BaseModelError(folder, "not a model folder: config.json is missing")
    try:
        config = read_json_file(cfg_path)
    except (OSError, JsonInputError) as exc:
        raise BaseModelError(cfg_path, f"cannot read config.json ({exc})") from None
    info = base_info_from_hf(config, checkpoint_shapes(folder), path=folder, name=folder.name)
    base = config.get("_name_or_path")
    if isinstance(base, str) and re.fullmatch(r"[\w.\-]+/[\w.\-]+", base):
        info.upstream_ids.append(base)
    return info


def load_base_model(path: str | Path, need_table: bool = True) -> BaseModelInfo:
    """Read a base model's facts from a GGUF file or an HF model folder (headers only). See
    `load_gguf_base` for `need_table`."""
    path = Path(path)
    if not path.exists():
        raise BaseModelError(path, "no such file or folder")
    if path.is_dir():
        return load_hf_base(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise BaseModelError(path, f"cannot read file: {exc.strerror or exc}") from None
    if magic == b"GGUF":
        return load_gguf_base(path, need_table)
    if path.name == "config.json":
        return load_hf_base(path.parent)
    raise BaseModelError(path, "not a base model: expected a GGUF model file or a Hugging Face model folder")
