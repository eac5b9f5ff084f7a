"""Search the Hub for adapters (optionally for one base model and one format) and for GGUF models.

The Hub's relation tags do the "for this base" part: a model card's `base_model: X` gives an adapter
the tag `base_model:adapter:X` and a quantized copy `base_model:quantized:X` (REFERENCE §6.1). Several
filter values are ANDed by the Hub.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice

from ..errors import HubError
from ..kinds import is_count
from .client import api, hub_errors
from .reach import require_hub

# format -> the tag the Hub filters on; "kohya" adapters carry the generic "lora" tag, so results
# are also narrowed client-side by `format_of`.
FORMAT_FILTERS = {"peft": "peft", "gguf": "gguf", "kohya": "lora", "ludwig": "ludwig"}
SORTS = {"downloads": "downloads", "likes": "likes", "recency": "last_modified", "updated": "last_modified",
         "recent": "last_modified", "created": "created_at", "trending": "trending_score"}
_EXPAND = ["downloads", "likes", "tags", "library_name", "lastModified", "gated", "cardData", "private"]


@dataclass
class SearchResult:
    repo_id: str
    format: str | None
    base_model: str | None
    downloads: int | None
    likes: int | None
    updated: str | None
    gated: bool = False
    license: str | None = None
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def format_of(tags: list[str], library_name: str | None) -> str | None:
    """peft / gguf / kohya / ludwig, from the repo's library name and tags."""
    low = {t.lower() for t in tags}
    if (library_name or "").lower() == "peft" or "peft" in low:
        return "peft"
    if "gguf" in low or (library_name or "").lower() == "gguf":
        return "gguf"
    if "ludwig" in low or (library_name or "").lower() == "ludwig":
        return "ludwig"
    if low & {"lycoris", "kohya", "kohya-ss", "lora"}:
        return "kohya"
    return None


def base_of(tags: list[str], card_base=None, relation: str = "adapter") -> str | None:
    for t in tags:
        if t.startswith(f"base_model:{relation}:"):
            return t.split(":", 2)[2]
    if isinstance(card_base, list):
        card_base = card_base[0] if card_base else None
    return card_base if isinstance(card_base, str) else None


def _result(info, relation: str) -> SearchResult | None:
    """One listed repository, each value read by kind (what the Hub, or a server standing in for it,
    sends is data from the network: a value of another kind is left out); None without a name."""
    if not isinstance(info.id, str):
        return None
    tags = [t for t in info.tags if isinstance(t, str)] if isinstance(info.tags, list) else []
    card = info.card_data
    updated = info.last_modified
    return SearchResult(
        repo_id=info.id, format=format_of(tags, _kind(info.library_name, str)),
        base_model=base_of(tags, getattr(card, "base_model", None) if card else None, relation),
        downloads=_count(info.downloads), likes=_count(info.likes),
        updated=updated.isoformat() if isinstance(updated, datetime) else None,
        gated=bool(info.gated), license=_kind(getattr(card, "license", None) if card else None, str), tags=tags)


def _kind(value, kind):
    return value if isinstance(value, kind) else None


def _count(value) -> int | None:
    return value if is_count(value) else None


def _filters(base: str | None, fmt: str | None, kind: str) -> list[str]:
    if kind == "model":
        return ["gguf"] + ([f"base_model:quantized:{base}"] if base else [])
    out = [f"base_model:adapter:{base}"] if base else []
    if fmt:
        if fmt not in FORMAT_FILTERS:
            raise ValueError(f"unknown format '{fmt}' (choose from {', '.join(FORMAT_FILTERS)})")
        out.append(FORMAT_FILTERS[fmt])
    if not out:
        out.append("lora")    # without a base or format: adapters, not every model on the Hub
    return out


def iter_search(text: str | None = None, base: str | None = None, fmt: str | None = None,
                sort: str = "downloads", kind: str = "adapter", max_results: int | None = None):
    """Results one by one, fetched page by page from the Hub as they are consumed."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort '{sort}' (choose from {', '.join(SORTS)})")
    relation = "quantized" if kind == "model" else "adapter"
    filters = _filters(base, fmt, kind)        # a bad format is a ValueError before any network
    require_hub()
    with hub_errors(base, "search"):
        it = iter(api().list_models(search=text or None, filter=filters, sort=SORTS[sort],
                                    limit=max_results, expand=_EXPAND))
        while True:
            try:
                info = next(it)
            except StopIteration:
                return
            except (ValueError, TypeError, KeyError, AttributeError) as exc:   # huggingface_hub could not parse it
                raise HubError(None, f"the Hub sent a search result that cannot be read ({type(exc).__name__}: "
                                     f"{exc}); try again later") from None
            r = _result(info, relation)
            if r is None or kind == "adapter" and fmt and r.format not in (fmt, None):
                continue       # e.g. a PEFT repo tagged "lora" when asking for Kohya files
            yield r


def search(text: str | None = None, base: str | None = None, fmt: str | None = None, sort: str = "downloads",
           limit: int = 30, offset: int = 0, kind: str = "adapter") -> list[SearchResult]:
    """One page: results offset … offset+limit-1."""
    return list(islice(iter_search(text, base, fmt, sort, kind, max_results=None if fmt else offset + limit),
                       offset, offset + limit))
