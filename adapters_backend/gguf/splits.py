"""Split GGUF models: one model written in parts (llama.cpp's gguf-split, a converter's
--split-max-size), named PREFIX-00001-of-0000N.gguf … PREFIX-0000N-of-0000N.gguf. The first part
holds the metadata and some tensors, every part carries split.no / split.count. llama.cpp opens the
first part and finds the others by that name pattern; LoRA Deck reads their tensor tables the same
way, so an adapter is checked against the whole model, not only the tensors of the first part.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .header import GGUFError, GGUFHeader, read_header

SPLIT_COUNT, SPLIT_NO, SPLIT_TENSORS = "split.count", "split.no", "split.tensors.count"
MAX_PARTS = 99_999                          # what the five-digit names can number
_NAME = re.compile(r"(.+)-(\d{5})-of-(\d{5})\.gguf")


def _count(metadata: Mapping) -> int:
    count = metadata.get(SPLIT_COUNT)
    if count is None:
        return 1
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTS:
        raise GGUFError(f"{SPLIT_COUNT} = {count!r} is not a number of parts")
    return count


def other_parts(path: Path, metadata: Mapping) -> list[Path]:
    """The parts after the first of the split model whose first part is `path` ([]: not split)."""
    count = _count(metadata)
    if count == 1:
        return []
    no, m = metadata.get(SPLIT_NO), _NAME.fullmatch(Path(path).name)
    if no != 0 or (m is not None and int(m[2]) != 1):
        which = f"part {no + 1} of {count}" if isinstance(no, int) and not isinstance(no, bool) else "a part"
        raise GGUFError(f"this file is {which} of a split model: open its first part (…-00001-of-{count:05d}.gguf)")
    if m is None or int(m[3]) != count:
        raise GGUFError(f"a model split in {count} parts must keep the names llama.cpp gives them "
                        f"(…-00001-of-{count:05d}.gguf), or its other parts cannot be found")
    return [Path(path).with_name(f"{m[1]}-{i:05d}-of-{count:05d}.gguf") for i in range(2, count + 1)]


def read_other_parts(path: Path, metadata: Mapping) -> list[GGUFHeader]:
    """The headers of the other parts, each checked to exist and to say it is the part its name says."""
    heads = []
    count = _count(metadata)
    for i, part in enumerate(other_parts(path, metadata), start=1):
        if not part.is_file():
            raise GGUFError(f"part {part.name} of this split model is missing")
        try:
            head = read_header(part)
        except GGUFError as exc:
            raise GGUFError(f"part {part.name} of this split model: {exc}") from None
        if head.metadata.get(SPLIT_NO) != i or head.metadata.get(SPLIT_COUNT) != count:
            raise GGUFError(f"{part.name} does not say it is part {i + 1} of {count} of this split model")
        heads.append(head)
    return heads


def all_tensors(first: GGUFHeader, others: list[GGUFHeader]) -> dict:
    """The tensor table of the whole model: every part's tensors, none in two parts, as many as the
    first part announces (split.tensors.count)."""
    if not others:
        return dict(first.tensors)
    tensors = {}
    for head in (first, *others):
        for name, info in head.tensors.items():
            if name in tensors:
                raise GGUFError(f"tensor {name} is in two parts of this split model")
            tensors[name] = info
    declared = first.metadata.get(SPLIT_TENSORS)
    if declared != len(tensors):
        raise GGUFError(f"the parts of this split model hold {len(tensors)} tensors, the first part says "
                        f"{declared!r}")
    return tensors


__all__ = ["MAX_PARTS", "SPLIT_COUNT", "SPLIT_NO", "SPLIT_TENSORS", "all_tensors", "other_parts", "read_other_parts"]
