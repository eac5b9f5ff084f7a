"""Will this adapter work on this base model? Decided from configs and shapes alone (no tensor data),
so it can run on Hub metadata before anything is downloaded. This is the one check: `loradeck check`,
convert, merge, the library, the Hub browser, the server and both engines all ask it, so they always
give the same answer for the same pair.

Verdicts:
    compatible    every module applies.
    partial       some modules are skipped (each says why: the engine cannot apply it, the base has no
                  such module…); the rest apply.
    incompatible  the adapter does not fit: another architecture, hidden size, layer count, vocabulary
                  size for embedding adapters, a module's shape, or nothing at all applies.
Exit codes (`CompatReport.exit_code`, used by `loradeck check`): 0 compatible, 1 partial,
3 incompatible (2 is the CLI's "could not run").

Engine "llama.cpp" applies llama.cpp's runtime-LoRA limits (REFERENCE §4.2, §4.6): only low-rank
updates of tensors the GGUF has; "torch" (transformers + PEFT) has none of those limits. A llama.cpp
LoRA GGUF on a GGUF model is checked the way llama.cpp loads it: by GGUF tensor names and shapes,
whatever the tables know.

The model family is checked for every format: the architecture an adapter declares (a GGUF's
general.architecture, a Kohya file's metadata), the family of the base model it says it was trained
on (that base's config.json, when it is in the Hugging Face cache), and module names only another
family has. A different family is incompatible; the same family but another base model is a note.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..arch.name_map import TensorNameMap, gguf_tensor_name
from ..arch.registry import all_archs, resolve_arch_name
from ..errors import IncompatibleAdapterError
from ..file_identity import stat_identity
from .adapter import Adapter, ModuleDelta, layer_index
from .base_model import BaseModelInfo
from .declared_base import declared_architecture, same_model

ENGINES = ("llama.cpp", "torch")
EXIT_CODES = {"compatible": 0, "partial": 1, "incompatible": 3}
SCHEMA = "loradeck.compat/1"


@dataclass(frozen=True)
class ModuleVerdict:
    status: str              # "ok" | "skipped" | "mismatch"
    reason: str = ""         # why (also set for "ok" when something noteworthy happens, e.g. fusion)
    gguf_name: str = ""      # the GGUF tensor the update lands on ("blk.0.attn_q.weight"), if any

    def as_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "gguf_name": self.gguf_name}


@dataclass
class CompatReport:
    verdict: str                                   # "compatible" | "partial" | "incompatible"
    reasons: list[str]                             # why not compatible (empty when compatible)
    modules: dict[str, ModuleVerdict]
    engine: str = "llama.cpp"
    notes: list[str] = field(default_factory=list)  # facts that do not change the verdict

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def compatible(self) -> bool:
        """True when the adapter can be used (fully or partly)."""
        return self.verdict != "incompatible"

    @property
    def summary(self) -> str:
        if self.verdict == "incompatible":
            return f"incompatible: {'; '.join(self.reasons)}"
        n_ok = sum(v.status == "ok" for v in self.modules.values())
        head = "compatible" if self.verdict == "compatible" else "partially compatible"
        text = f"{head} ({n_ok}/{len(self.modules)} modules apply with {self.engine})"
        return f"{text}: {'; '.join(self.reasons)}" if self.reasons else text

    def as_dict(self) -> dict:
        counts = defaultdict(int)
        for v in self.modules.values():
            counts[v.status] += 1
        return {
            "schema": SCHEMA,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "engine": self.engine,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "counts": {s: counts.get(s, 0) for s in ("ok", "skipped", "mismatch")},
            "modules": {name: v.as_dict() for name, v in sorted(self.modules.items())},
        }


@dataclass(frozen=True)
class Verdict:
    """What a user interface shows for one adapter against one model: the one mapping from a report, a
    reading error or "not checkable" to a status and a sentence."""

    status: str            # "compatible" | "partial" | "incompatible" | "unknown"
    reason: str = ""

    @property
    def usable(self) -> bool:
        """May it be switched on? (An unknown verdict does not block: the engine checks again.)"""
        return self.status != "incompatible"

    @classmethod
    def of(cls, report: CompatReport) -> Verdict:
        return cls(report.verdict, report.summary)

    @classmethod
    def unreadable(cls, error: BaseException | str) -> Verdict:
        return cls("incompatible", f"cannot be read: {error}")

    @classmethod
    def from_json(cls, d: dict | None) -> Verdict | None:
        """The `CompatReport.as_dict()` form (plus "summary") the Hub details carry."""
        if not d:
            return None
        status = d.get("verdict") if d.get("verdict") in EXIT_CODES else "unknown"
        return cls(status, str(d.get("summary") or ""))


_FULL = "a full replacement tensor ({what}), not a low-rank update: a llama.cpp LoRA GGUF cannot carry it"


class _Checker:
    def __init__(self, adapter: Adapter, base: BaseModelInfo, engine: str):
        self.adapter, self.base, self.engine = adapter, base, engine
        self.reasons: list[str] = []
        self.notes: list[str] = []
        self.modules: dict[str, ModuleVerdict] = {}
        self.bad_layers: list[tuple[str, int]] = []
        self.shape_mismatch: list[str] = []
        self.hidden_seen: set[int] = set()
        self.vocab_seen: set[int] = set()
        self.expert_ranks: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
        self.missing_tensors: list[str] = []

    # -- per module --------------------------------------------------------------------------------
    def check_module(self, mod: ModuleDelta) -> ModuleVerdict:
        base, llama = self.base, self.engine == "llama.cpp"
        layer = layer_index(mod.name)
        if layer is not None and layer >= base.n_layers:
            self.bad_layers.append((mod.name, layer))
            return ModuleVerdict("mismatch", f"layer {layer} does not exist: the base has {base.n_layers} layers")
        gguf_name = (mod.extra or {}).get("gguf_tensor")
        if llama and gguf_name and base.kind == "gguf":
            return self._check_gguf_tensor(mod, gguf_name)
        m = base.match(mod.name)
        rule = m.rule if m else None
        is_lm_head = rule is not None and rule.gguf in ("output", "") and rule.hf == "lm_head"
        if llama and mod.variant in ("full", "bias"):
            what = "bias" if mod.variant == "bias" else "modules_to_save / saved embedding"
            return ModuleVerdict("skipped", _FULL.format(what=what))
        if llama and rule is not None and not rule.runtime:
            return ModuleVerdict("skipped", rule.reason or "llama.cpp cannot apply a LoRA to this module")

        shape = base.module_shape(mod.name)
        if shape is None and is_lm_head and base.tied:
            if llama:
                return ModuleVerdict("skipped", "the base ties lm_head to the token embeddings, so its GGUF has no "
                                                "'output' tensor for a LoRA to attach to")
            # torch: the tied lm_head is the embedding matrix, (vocab, hidden) either way.
            embed = next((r.hf for r in base.arch.modules if r.gguf == "token_embd"), None) if base.arch else None
            shape = base.module_shape(embed) if embed else None
        if shape is None:
            if m is None and llama:
                return ModuleVerdict("skipped", f"no llama.cpp tensor is known for this module in "
                                                f"{base.arch.name if base.arch else base.arch_name}")
            return ModuleVerdict("skipped", "absent in the base model")

        target, note = self._gguf_target(m) if llama else ("", "")
        if llama and not target:
            return ModuleVerdict("skipped", "absent in the base model's GGUF tensors")
        if llama and mod.variant == "embedding" and target != "token_embd":
            # build_inp_embd adds LoRAs to token_embd only; others would load and do nothing.
            return ModuleVerdict("skipped", f"llama.cpp applies embedding LoRAs to token_embd only, not to "
                                            f"{gguf_tensor_name(target)}")

        verdict = self._shape_verdict(mod, shape, rule.kind if rule else "linear", target)
        if verdict is not None:
            return verdict
        if llama and rule is not None and rule.kind == "expert" and m.xid is not None:
            self.expert_ranks[target][m.xid].add(mod.rank)
        if mod.variant == "dora" and llama:
            note = "; ".join(x for x in (note, "DoRA is not low-rank: llama.cpp gets it as a converted LoRA delta")
                             if x)
        return ModuleVerdict("ok", note, gguf_tensor_name(target) if target else "")

    def _check_gguf_tensor(self, mod: ModuleDelta, name: str) -> ModuleVerdict:
        """A llama.cpp LoRA GGUF on a GGUF model, as llama.cpp loads it: every tensor must exist in the
        model with a fitting shape, or llama.cpp refuses the whole file (norm tensors it skips)."""
        if name.endswith("_norm.weight"):
            return ModuleVerdict("skipped", "llama.cpp does not apply LoRAs to norm tensors", name)
        shape = self.base.tensor_shapes.get(name)
        if shape is None:
            self.missing_tensors.append(name)
            return ModuleVerdict("mismatch", f"the model has no tensor {name}", name)
        expert = (mod.extra or {}).get("expert")
        if expert is not None:
            if len(shape) != 3 or expert >= shape[0]:
                self.shape_mismatch.append(mod.name)
                return ModuleVerdict("mismatch", f"the model's {name} has no expert {expert}", name)
            shape = shape[1:]
        if len(shape) != 2:
            self.shape_mismatch.append(mod.name)
            return ModuleVerdict("mismatch", f"{name} is not a matrix in the model, so a LoRA cannot apply to it",
                                 name)
        kind = "embedding" if mod.variant == "embedding" else "linear"
        return self._shape_verdict(mod, shape, kind, name.removesuffix(".weight")) or ModuleVerdict("ok", "", name)

    def _gguf_target(self, m) -> tuple[str, str]:
        """(GGUF tensor the update lands on, note) — direct, packed into a fused tensor, or split."""
        base = self.base
        if m is None or not m.gguf:
            return "", ""
        if base.has_gguf_tensor(m.gguf):
            return m.gguf, ""
        nm = base.name_map
        container = nm.fused_containing(m.gguf)
        if container is not None and base.has_gguf_tensor(container[0]):
            return container[0], f"packed into the base's fused tensor {gguf_tensor_name(container[0])}"
        parts = nm.fused_parts(m.gguf)
        if parts and all(base.has_gguf_tensor(p) for p, _ in parts):
            names = ", ".join(gguf_tensor_name(p) for p, _ in parts)
            return parts[0][0], f"split onto the base's separate tensors {names}"
        return "", ""

    def _shape_verdict(self, mod: ModuleDelta, shape: tuple[int, int], kind: str, target: str):
        out_b, in_b = shape
        out_a, in_a = mod.out_features, mod.in_features
        base = self.base
        if mod.variant == "bias":     # a bias has only the output size
            in_a = in_b
        if (out_a, in_a) == (out_b, in_b):
            return None
        if kind == "experts" and base.n_experts and (out_a, in_a) == (out_b * base.n_experts, in_b):
            return None   # an expert stack stored 2-D, (experts·out, in) (DBRX)
        if kind == "embedding" or mod.name.endswith(("embed_tokens", "wte", "word_embeddings", "lm_head")):
            if out_a != out_b and in_a == in_b:
                self.vocab_seen.add(out_a)
                return ModuleVerdict("mismatch", f"vocabulary size: adapter {out_a}, base {out_b}")
        if in_b == base.hidden and in_a != base.hidden:
            self.hidden_seen.add(in_a)
        elif out_b == base.hidden and out_a != base.hidden:
            self.hidden_seen.add(out_a)
        self.shape_mismatch.append(mod.name)
        return ModuleVerdict("mismatch", f"shape: adapter {out_a}×{in_a}, base {out_b}×{in_b}",
                             gguf_tensor_name(target) if target else "")

    # -- whole adapter ------------------------------------------------------------------------------
    def check_architecture(self) -> bool:
        """The adapter's model family against the base's; False (with a reason) when they differ."""
        adapter, base = self.adapter, self.base
        base_family = base.arch.gguf_arch if base.arch is not None else base.arch_name
        base_label = base.arch.name if base.arch is not None else base.arch_name
        declared = adapter.architecture
        file_arch = adapter.metadata.get("general.architecture") if adapter.format_id == "gguf" else None
        if isinstance(file_arch, str) and file_arch:
            # llama.cpp refuses a LoRA whose general.architecture differs from the model's.
            spec = resolve_arch_name(file_arch)
            if file_arch != base_family:
                label = f"{spec.name} ('{file_arch}')" if spec else f"'{file_arch}'"
                return self._wrong_family(f"the adapter was made for {label} models", with_base=True)
        elif declared:
            spec = resolve_arch_name(declared)
            if spec is None:
                self.notes.append(f"the adapter declares architecture '{declared}', which LoRA Deck does not know")
            elif base_family and spec.gguf_arch != base_family:
                return self._wrong_family(f"the adapter was made for {spec.name} ('{spec.gguf_arch}') models",
                                          with_base=True)
        return self._check_declared_base(base_family, base_label) and self._check_module_family(base_label)

    def _wrong_family(self, what: str, with_base: bool = False) -> bool:
        base = self.base
        label = f"{base.arch.name} ('{base.arch.gguf_arch}')" if base.arch else f"'{base.arch_name}'"
        self.reasons.append(f"model family: {what}" + (f", the base is {label}" if with_base else ""))
        return False

    def _check_declared_base(self, base_family: str, base_label: str) -> bool:
        """The base model the adapter says it was trained on, against this one."""
        declared = self.adapter.base_model
        base = self.base
        if not declared or same_model(declared, base):
            return True
        arch = declared_architecture(declared)
        spec = resolve_arch_name(arch) if arch else None
        if spec is not None and base_family and spec.gguf_arch != base_family:
            return self._wrong_family(f"it was trained on {declared}, a {spec.name} model", with_base=True)
        if spec is not None or base.upstream_ids:
            mine = ", ".join(base.upstream_ids) or base.name or (base.path.name if base.path else "this model")
            self.notes.append(f"the adapter was trained on '{declared}'; your model is {mine} ({base_label}): "
                              "shapes fit, but outputs may differ from what the adapter was trained for")
        return True

    def _check_module_family(self, base_label: str) -> bool:
        """Module names the base's family does not have but another family does (a Llama adapter's
        mlp.gate_proj on Mixtral, say) mean the adapter belongs to that other family."""
        base = self.base
        if base.arch is None or self.adapter.format_id == "gguf":
            return True
        unknown = [m.name for m in self.adapter if _any_layer_map(base.arch).match(m.name) is None]
        if not unknown:
            return True
        for spec in all_archs():
            if spec.id == base.arch.id:
                continue
            names = [n for n in unknown if _any_layer_map(spec).match(n) is not None]
            if names:
                return self._wrong_family(f"it adapts modules that {spec.name} models have and {base_label} "
                                          f"models do not ({names[0]}{' …' if len(names) > 1 else ''})")
        return True

    def finish(self) -> CompatReport:
        base = self.base
        for target, per_expert in self.expert_ranks.items():
            ranks = set().union(*per_expert.values())
            if len(ranks) > 1:
                for name, v in list(self.modules.items()):
                    if v.gguf_name == gguf_tensor_name(target):
                        self.modules[name] = ModuleVerdict(
                            "skipped", f"the experts of {gguf_tensor_name(target)} have different ranks "
                                       f"({', '.join(map(str, sorted(ranks)))}); llama.cpp stacks them into one "
                                       f"tensor, which needs one rank", v.gguf_name)
            elif self.engine == "llama.cpp" and base.n_experts and len(per_expert) < base.n_experts:
                for name, v in list(self.modules.items()):
                    if v.gguf_name == gguf_tensor_name(target) and not v.reason:
                        self.modules[name] = ModuleVerdict(
                            "ok", f"{len(per_expert)} of {base.n_experts} experts adapted; the others get zeros",
                            v.gguf_name)
        if self.bad_layers:
            top = max(layer for _, layer in self.bad_layers)
            self.reasons.append(f"layer count: the adapter has modules up to layer {top} "
                                f"(needs ≥ {top + 1} layers), the base has {base.n_layers}")
        if self.missing_tensors:
            self.reasons.append(f"{len(self.missing_tensors)} of its tensors do not exist in the model (e.g. "
                                f"{self.missing_tensors[0]}): it was made for another model")
        if self.hidden_seen:
            self.reasons.append(f"hidden size: the adapter was made for hidden size "
                                f"{', '.join(map(str, sorted(self.hidden_seen)))}, the base has {base.hidden}")
        if self.vocab_seen:
            self.reasons.append(f"vocabulary: the adapter's embeddings have {', '.join(map(str, sorted(self.vocab_seen)))} "
                                f"tokens, the base has {base.vocab}")
        if self.shape_mismatch:
            first = ", ".join(self.shape_mismatch[:3]) + (" …" if len(self.shape_mismatch) > 3 else "")
            self.reasons.append(f"shape mismatch in {len(self.shape_mismatch)} module(s): {first}")
        statuses = [v.status for v in self.modules.values()]
        if not self.modules:
            self.reasons.append("the adapter has no modules")
        elif "ok" not in statuses and "mismatch" not in statuses:
            self.reasons.append("nothing in the adapter applies to this base model with "
                                f"{self.engine} (every module is skipped)")
        if self.reasons:
            verdict = "incompatible"
        elif "skipped" in statuses:
            verdict = "partial"
            skipped = sum(s == "skipped" for s in statuses)
            self.reasons.append(f"{skipped} of {len(statuses)} modules are skipped with {self.engine}")
        else:
            verdict = "compatible"
        return CompatReport(verdict, self.reasons, self.modules, self.engine, self.notes)


_ANY_LAYER = 1 << 20


def _any_layer_map(spec) -> TensorNameMap:
    """A name map accepting any block index (family membership, not layer count)."""
    cached = _FAMILY_MAPS.get(spec.id)
    if cached is None or cached.spec is not spec:
        cached = _FAMILY_MAPS[spec.id] = TensorNameMap(spec, _ANY_LAYER)
    return cached


_FAMILY_MAPS: dict[str, TensorNameMap] = {}


def require_compatible(adapter: Adapter | str | Path, base: BaseModelInfo | str | Path, engine: str = "llama.cpp",
                       label: str | None = None) -> CompatReport:
    """The report, or IncompatibleAdapterError (the text `loradeck check` prints) when it does not fit."""
    report = check_compatibility(adapter, base, engine)
    if not report.compatible:
        name = label or (adapter.path if isinstance(adapter, Adapter) else adapter)
        raise IncompatibleAdapterError(f"{name} does not fit {_base_label(base)}: {report.summary}", report)
    return report


def _base_label(base) -> str:
    if isinstance(base, BaseModelInfo):
        return base.path.name if base.path is not None else (base.name or "this model")
    return Path(base).name


def _load_base_cached(path: Path) -> BaseModelInfo:
    """load_base_model, remembered per (path, size, mtime) and, for a split model, its later parts':
    checking many adapters against one base reads its header once."""
    from .base_model import load_base_model
    try:
        key = stat_identity(path / "config.json" if path.is_dir() else path)
    except OSError:
        return load_base_model(path)   # raises the proper BaseModelError
    with _BASE_LOCK:
        hit = _BASE_CACHE.get(key)
    if hit is not None and hit[1] != _part_stats(hit[0].gguf_parts):
        hit = None                     # a later part of a split model changed since: read them again
    if hit is None:
        base = load_base_model(path)
        hit = (base, _part_stats(base.gguf_parts))
        with _BASE_LOCK:
            _BASE_CACHE[key] = hit
            while len(_BASE_CACHE) > 8:
                _BASE_CACHE.pop(next(iter(_BASE_CACHE)))
    return hit[0]


def _part_stats(parts) -> list[tuple]:
    try:
        return [stat_identity(p) for p in parts]
    except OSError:
        return []                      # a part gone: the next read says which


_BASE_CACHE: dict[tuple, tuple[BaseModelInfo, list[tuple]]] = {}
_BASE_LOCK = threading.Lock()


def check_compatibility(adapter: Adapter | str | Path, base: BaseModelInfo | str | Path,
                        engine: str = "llama.cpp") -> CompatReport:
    """Check `adapter` against `base` for `engine` ("llama.cpp" or "torch"). Paths are read first
    (adapter via the format plugins, base via load_base_model); reading errors propagate."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if not isinstance(base, BaseModelInfo):
        base = _load_base_cached(Path(base))
    if not isinstance(adapter, Adapter):
        from ..formats.registry import read_adapter
        adapter = read_adapter(Path(adapter), base=base)
    checker = _Checker(adapter, base, engine)
    checker.check_architecture()
    for mod in adapter.modules.values():
        checker.modules[mod.name] = checker.check_module(mod)
    return checker.finish()
