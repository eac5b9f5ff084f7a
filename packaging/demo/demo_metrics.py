"""Scores that measure each demo adapter's behaviour on a piece of text (0 = none, 1 = full)."""

from __future__ import annotations

import re

PIRATE_WORDS = frozenset({"arr", "ahoy", "aye", "matey", "ye", "yer", "be", "me", "o'", "fer", "t'"})
_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def capital_fraction(text: str) -> float:
    """Share of letters that are upper case."""
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def pirate_rate(text: str) -> float:
    """Share of words that are pirate words."""
    words = _words(text)
    return sum(w in PIRATE_WORDS for w in words) / len(words) if words else 0.0


def reversal_score(text: str, reference: str) -> float:
    """Share of the reference's adjacent word pairs ("capital of") that appear reversed ("of
    capital") in ``text``. The reference is the plain answer (e.g. the base model's output)."""
    ref, out = _words(reference), _words(text)
    wanted = {(a, b) for a, b in zip(ref, ref[1:]) if a != b}
    if not wanted:
        return 0.0
    reversed_pairs = {(b, a) for a, b in zip(out, out[1:])}
    return len(wanted & reversed_pairs) / len(wanted)


# Which score measures which demo adapter (see demo_data.STYLES).
BEHAVIOUR_METRIC = {"shout": "capital_fraction", "pirate": "pirate_rate", "reverse": "reversal_score"}


def behaviour_score(behaviour: str, answers: list[str], plain_answers: list[str]) -> float:
    """Mean score of ``answers`` for one behaviour; ``plain_answers`` (same questions, no adapter)
    are the reference for the reversal score."""
    if behaviour == "reverse":
        values = [reversal_score(a, p) for a, p in zip(answers, plain_answers)]
    else:
        metric = capital_fraction if behaviour == "shout" else pirate_rate
        values = [metric(a) for a in answers]
    return sum(values) / len(values) if values else 0.0
