"""HF module path ↔ GGUF tensor name, built per (ArchSpec, layer count) instance.

Nothing here mutates an ArchSpec or any class-level dict: every TensorNameMap owns its own patterns
(gguf-py's TensorNameMap leaks overrides through class attributes; this one does not).
GGUF names are returned without the ".weight" suffix, like the spec templates
("blk.3.attn_q"); `gguf_tensor_name()` adds it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .spec import ArchSpec, FusedRule, ModuleRule


def _expand(template: str, bid: int | None = None, xid: int | None = None) -> str:
    out = template
    if bid is not None:
        out = out.replace("{bid}", str(bid))
    if xid is not None:
        out = out.replace("{xid}", str(xid))
    return out


def _templates(rule: ModuleRule) -> tuple[str, ...]:
    return (rule.hf, *rule.aliases)


def hf_module_names(spec: ArchSpec, n_layers: int, n_experts: int = 0, aliases: bool = True,
                    blocks: Iterable[int] | None = None) -> list[str]:
    """Every HF module path the table knows for `n_layers` blocks (with `aliases`, also the other
    names of the same modules: older checkpoints, remote code).

    Per-expert templates ({xid}) are expanded for `n_experts` experts (none when 0). Order: global
    modules first, then block by block in table order; no duplicates. `blocks` limits the expansion
    to those block indices (those below `n_layers`): callers that only need the names of the blocks
    a file mentions pass them, so the work follows the file's size, not a number it claims.
    """
    def templates(rule: ModuleRule) -> tuple[str, ...]:
        return _templates(rule) if aliases else (rule.hf,)

    n_layers = max(0, int(n_layers))
    bids = range(n_layers) if blocks is None else sorted({b for b in blocks if 0 <= b < n_layers})
    out: dict[str, None] = {}
    for rule in spec.modules:
        if "{bid}" not in rule.hf:
            for t in templates(rule):
                out[t] = None
    for bid in bids:
        for rule in spec.modules:
            if "{bid}" not in rule.hf:
                continue
            for t in templates(rule):
                if "{xid}" in t:
                    for xid in range(max(0, int(n_experts))):
                        out[_expand(t, bid, xid)] = None
                else:
                    out[_expand(t, bid)] = None
    return list(out)


def gguf_tensor_name(gguf_name: str) -> str:
    """"blk.0.attn_q" → "blk.0.attn_q.weight" (the name inside a GGUF file)."""
    return gguf_name if gguf_name.endswith(".weight") else f"{gguf_name}.weight"


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"(\{bid\}|\{xid\})", template)
    # An index of more than 9 digits is no block or expert (and int() of a huge digit run is slow or fails).
    rx = "".join(f"(?P<{p[1:-1]}>\\d{{1,9}})" if p in ("{bid}", "{xid}") else re.escape(p) for p in parts)
    return re.compile(rx + r"\Z")


@dataclass(frozen=True)
class NameMatch:
    """What one HF module path means: its rule, GGUF name ("" if none), block and expert index."""

    hf: str
    gguf: str
    rule: ModuleRule
    bid: int | None
    xid: int | None


class TensorNameMap:
    """Name map for one architecture and block count. Blocks ≥ n_layers do not match."""

    def __init__(self, spec: ArchSpec, n_layers: int, n_experts: int | None = None):
        self.spec = spec
        self.n_layers = int(n_layers)
        self.n_experts = n_experts
        self._hf_patterns: list[tuple[re.Pattern, ModuleRule]] = [
            (_pattern(t), rule) for rule in spec.modules for t in _templates(rule)]
        self._gguf_patterns: list[tuple[re.Pattern, ModuleRule]] = [
            (_pattern(rule.gguf), rule) for rule in spec.modules if rule.gguf]
        self._fused_patterns: list[tuple[re.Pattern, FusedRule]] = [(_pattern(f.fused), f) for f in spec.fused]
        self._cache: dict[str, NameMatch | None] = {}

    def _in_range(self, bid: int | None, xid: int | None) -> bool:
        if bid is not None and not 0 <= bid < self.n_layers:
            return False
        if xid is not None and self.n_experts is not None and not 0 <= xid < self.n_experts:
            return False
        return True

    def match(self, hf_module: str) -> NameMatch | None:
        """The rule an HF module path falls under, or None (unknown name or block out of range)."""
        if hf_module in self._cache:
            return self._cache[hf_module]
        found = None
        for rx, rule in self._hf_patterns:
            m = rx.match(hf_module)
            if not m:
                continue
            groups = m.groupdict()
            bid = int(groups["bid"]) if groups.get("bid") is not None else None
            xid = int(groups["xid"]) if groups.get("xid") is not None else None
            if not self._in_range(bid, xid):
                continue
            found = NameMatch(hf_module, _expand(rule.gguf, bid) if rule.gguf else "", rule, bid, xid)
            break
        self._cache[hf_module] = found
        return found

    def to_gguf(self, hf_module: str) -> tuple[str, ModuleRule] | None:
        """(GGUF name without ".weight", rule), or None. The name is "" when the architecture has no
        GGUF tensor for this module (rule.runtime is then False and rule.reason says why)."""
        m = self.match(hf_module)
        return None if m is None else (m.gguf, m.rule)

    def to_hf(self, gguf_name: str, xid: int | None = None) -> str | None:
        """The transformers module path for a GGUF tensor name (".weight" optional), or None when no
        single HF module corresponds (a fused tensor of separate HF modules: see `fused_parts`).
        A stacked expert tensor ("blk.0.ffn_gate_exps") names one HF module per expert: pass `xid`."""
        name = gguf_name.removesuffix(".weight")
        fallback = None
        for rx, rule in self._gguf_patterns:
            m = rx.match(name)
            if not m or (rule.kind == "expert") != (xid is not None):
                continue
            bid = int(m.group("bid")) if "bid" in m.groupdict() else None
            if not self._in_range(bid, xid):
                continue
            hf = _expand(rule.hf, bid, xid)
            if rule.native:
                return hf
            fallback = fallback or hf
        return fallback

    def fused_parts(self, gguf_name: str) -> list[tuple[str, str]] | None:
        """For a fused GGUF tensor ("blk.0.attn_qkv"): [(part GGUF name, part_rows key or ""), …]."""
        name = gguf_name.removesuffix(".weight")
        for rx, rule in self._fused_patterns:
            m = rx.match(name)
            if m:
                bid = int(m.group("bid")) if "bid" in m.groupdict() else None
                rows = rule.part_rows or ("",) * len(rule.parts)
                return [(_expand(p, bid), r) for p, r in zip(rule.parts, rows)]
        return None

    def fused_containing(self, gguf_name: str) -> tuple[str, int, list[tuple[str, str]]] | None:
        """For a part ("blk.0.attn_q") of a fused tensor: (fused name, index of the part, all parts)."""
        name = gguf_name.removesuffix(".weight")
        for rule in self.spec.fused:
            for i, part in enumerate(rule.parts):
                rx = _pattern(part)
                m = rx.match(name)
                if m:
                    bid = int(m.group("bid")) if "bid" in m.groupdict() else None
                    rows = rule.part_rows or ("",) * len(rule.parts)
                    return (_expand(rule.fused, bid), i, [(_expand(p, bid), r) for p, r in zip(rule.parts, rows)])
        return None

    def module_names(self, n_experts: int = 0) -> list[str]:
        return hf_module_names(self.spec, self.n_layers, n_experts)
