"""Kohya/LyCORIS module stems ("lora_te_model_layers_0_self_attn_q_proj") → transformers module paths.

Kohya replaced every "." with "_", and module names contain "_" themselves, so a stem cannot be
split back. The map is built forward instead: every module path the base model (or, without one,
each known architecture table) has, under every prefix Kohya and LyCORIS use, turned into its stem.
Two paths that give the same stem are refused as ambiguous rather than guessed.
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


def block_numbers(stems) -> set[int]:
    """Every number the stems spell: the candidates for a block index (a stem can only match a
    module path whose block number it spells). Runs of more than 9 digits are no block index."""
    return {int(n) for s in stems for n in re.findall(r"\d+", s) if len(n) <= 9}


def resolve(stems: list[str], base=None) -> tuple[dict[str, str], list[str], str | None, list[str]]:
    """(resolved {stem: module}, unresolved stems, architecture id if one alone fits, notes)."""
    notes: list[str] = []
    if base is not None and getattr(base, "arch", None) is not None:
        mapping = stem_map(base.module_names())
        return _apply(stems, mapping, notes) + (base.arch.id, notes)
    from adapters_backend.arch.name_map import hf_module_names
    from adapters_backend.arch.registry import all_archs

    # Names are built only for the block numbers the stems spell, so the work follows the file's size.
    blocks = block_numbers(stems)
    n_layers = max(blocks, default=0) + 1
    best: list[tuple[str, dict[str, str], list[str]]] = []
    best_score = 0
    for spec in all_archs():
        try:
            mapping = stem_map(hf_module_names(spec, n_layers, blocks=blocks))
        except Exception as exc:  # noqa: BLE001 - a broken third-party table must not stop reading
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
