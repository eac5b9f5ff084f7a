"""Kohya/LyCORIS module stems ("lora_te_model_layers_0_self_attn_q_proj") → transformers module paths.

Kohya replaced every "." with "_", and module names contain "_" themselves, so a stem cannot be
split back. The map is built forward instead: every module path the base model (or, without one,
each known architecture table) has, under every prefix Kohya and LyCORIS use, turned into its stem.
Two paths that give the same stem are refused as ambiguous rather than guessed.

Without a base, a table's paths are not expanded block by block (a file naming block 300000000, or
thousands of blocks, would make that unbounded): each table's path templates become stem templates,
indexed by their shape with digit runs folded, and each stem of the file is looked up and matched
against the few templates of its shape — the same answers, in time that follows the file.
"""
from __future__ import annotations

import re

PREFIXES = ("lora_te", "lora_te1", "lora_te2", "lora_te3", "lycoris", "lora_transformer", "lora_unet", "lora", "")
_ROOTS = ("model.", "transformer.")   # Kohya may have wrapped the inner model, so paths start below these


def _stems_for(name: str) -> set[str]:
    variants = {name}
    for root in _ROOTS:
        if name.startswith(root):
            variants.add(name[len(root):])
    out = set()
    for prefix in PREFIXES:
        for v in variants:
            out.add((f"{prefix}_{v}" if prefix else v).replace(".", "_"))
    return out


def stem_map(module_names) -> dict[str, str | None]:
    """{stem: module path}; None where two different paths give the same stem."""
    out: dict[str, str | None] = {}
    for name in module_names:
        for stem in _stems_for(name):
            if stem in out and out[stem] != name:
                out[stem] = None
            else:
                out[stem] = name
    return out


_DIGITS = re.compile(r"\d+")


def _shape(text: str) -> str:
    """A stem with every digit run folded to '#': equal for a stem and the templates that can spell it."""
    return _DIGITS.sub("#", text)


def _stem_templates(spec) -> dict[str, list[tuple[re.Pattern, str]]]:
    """{shape: [(regex over stems capturing the block number, HF path template)]} for every path and
    alias of the table (per-expert paths excluded, as for a table expanded with no experts)."""
    out: dict[str, list[tuple[re.Pattern, str]]] = {}
    for rule in spec.modules:
        for template in (rule.hf, *rule.aliases):
            if "{xid}" in template:
                continue
            for stem in _stems_for(template):
                rx = re.compile(r"(\d{1,9})".join(re.escape(part) for part in stem.split("{bid}")))
                out.setdefault(_shape(stem.replace("{bid}", "0")), []).append((rx, template))
    return out


def _table_map(spec, stems: list[str], shapes: dict[str, str]) -> dict[str, str | None]:
    """What stem_map(every path of the table) says about `stems`: {stem: path, or None if ambiguous}."""
    templates = _stem_templates(spec)
    mapping: dict[str, str | None] = {}
    for stem in stems:
        names = set()
        for rx, template in templates.get(shapes[stem], ()):
            m = rx.fullmatch(stem)
            if m is None:
                continue
            blocks = set(m.groups())
            if len(blocks) > 1 or any(b != str(int(b)) for b in blocks):   # "007" spells no block number
                continue
            names.add(template.replace("{bid}", blocks.pop()) if blocks else template)
        if names:
            mapping[stem] = names.pop() if len(names) == 1 else None
    return mapping


def resolve(stems: list[str], base=None) -> tuple[dict[str, str], list[str], str | None, list[str]]:
    """(resolved {stem: module}, unresolved stems, architecture id if one alone fits, notes)."""
    notes: list[str] = []
    if base is not None and getattr(base, "arch", None) is not None:
        mapping = stem_map(base.module_names())
        return _apply(stems, mapping, notes) + (base.arch.id, notes)
    from adapters_backend.plugins.api import all_archs

    shapes = {stem: _shape(stem) for stem in stems}
    best: list[tuple[str, dict[str, str], list[str]]] = []
    best_score = 0
    for spec in all_archs():
        try:
            mapping = _table_map(spec, stems, shapes)
        except Exception as exc:  # a broken third-party table must not stop reading
            notes.append(f"architecture table {getattr(spec, 'id', spec)} failed: {exc}")
            continue
        found, missing = _apply(stems, mapping, [])
        if len(found) > best_score:
            best, best_score = [(spec.id, found, missing)], len(found)
        elif len(found) == best_score and found:
            best.append((spec.id, found, missing))
    if not best:
        return {}, list(stems), None, notes
    # Families that share module names (Llama, Mistral, Qwen2…) resolve identically: that is no ambiguity.
    first = best[0][1]
    if any(found != first for _, found, _ in best[1:]):
        shared = {s: m for s, m in first.items() if all(f.get(s) == m for _, f, _ in best[1:])}
        unsure = [s for s in first if s not in shared]
        notes.append(f"{len(unsure)} module name(s) mean different modules in {', '.join(a for a, _, _ in best)}; "
                     "give the base model to resolve them")
        return shared, sorted(set(stems) - set(shared)), None, notes
    arch = best[0][0] if len(best) == 1 else None
    return first, best[0][2], arch, notes


def _apply(stems, mapping, notes) -> tuple[dict[str, str], list[str]]:
    found, missing = {}, []
    for s in stems:
        name = mapping.get(s)
        if name is None:
            if s in mapping:
                notes.append(f"{s} matches two module names of the base; skipped")
            missing.append(s)
        else:
            found[s] = name
    return found, missing
