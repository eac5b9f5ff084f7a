r"""PEFT's `rank_pattern` / `alpha_pattern` keys, matched in bounded time.

PEFT treats each key as a regular expression and asks `re.match(rf"(.*\.)?({key})$", name)`
(REFERENCE §1.3). Handing a key from a downloaded config to Python's backtracking `re` lets a crafted
key (nested quantifiers, `(a|a)*…`) take exponential time. Here a key is parsed into the part of
regex syntax real configs use — literals, `.`, escapes (`\.`, `\d`, `\w`, `\s`), character classes,
groups `(…)` / `(?:…)`, `|`, quantifiers `* + ? {m,n}`, `^` and `$` — and run as an automaton whose
cost is linear in the name: the set of live states advances one character at a time (memoised,
a lazy DFA), with a hard budget on the work per config. Anything else (look-around, back-references,
flags, possessive or atomic forms) is refused with the reason: such a key is not a module-name
pattern, and would need a backtracking engine.

`ModulePattern(key).matches(name)` gives exactly `bool(re.match(rf"(.*\.)?({key})$", name))` for
every key it accepts (tests/formats/test_module_patterns.py checks this against `re`).
"""
from __future__ import annotations

MAX_KEY_LENGTH = 512
MAX_STATES = 4096          # automaton size per key ({m,n} copies its operand)
MAX_REPEAT = 1000          # the largest {m,n} bound
MAX_KEYS = 10_000          # keys per pattern table (real configs: a few, or one per module)
MAX_NAME_LENGTH = 4096     # module names matched against keys (real ones: under 200 characters)


class PatternKeyError(ValueError):
    """A key that is not a module-name pattern LoRA Deck can match in bounded time."""


class WorkBudget:
    """Work shared by every match of one config, so no key × name combination runs unbounded."""

    def __init__(self, steps: int = 5_000_000):
        self.left = steps

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise PatternKeyError("matching the patterns against the module names takes too much work")


# ------------------------------------------------------------------------------------------ parsing
# AST nodes: ("chars", pred) | ("seq", [nodes]) | ("alt", [nodes]) | ("repeat", node, min, max|None)
#            | ("start",) | ("end",)
_SPECIAL = set(".^$*+?{}[]\\|()")
_CLASS_ESCAPES = {
    "d": lambda c: c.isdecimal(), "D": lambda c: not c.isdecimal(),
    "w": lambda c: c.isalnum() or c == "_", "W": lambda c: not (c.isalnum() or c == "_"),
    "s": lambda c: c.isspace(), "S": lambda c: not c.isspace(),
}


def _literal(ch: str):
    return lambda c: c == ch


class _Parser:
    def __init__(self, key: str):
        self.key, self.pos = key, 0

    def error(self, problem: str) -> PatternKeyError:
        return PatternKeyError(f"{problem} at position {self.pos}")

    def peek(self) -> str | None:
        return self.key[self.pos] if self.pos < len(self.key) else None

    def take(self) -> str:
        ch = self.key[self.pos]
        self.pos += 1
        return ch

    def parse(self):
        node = self.alternation()
        if self.pos != len(self.key):
            raise self.error("unbalanced ')'")
        return node

    def alternation(self):
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self):
        items = []
        while self.peek() is not None and self.peek() not in "|)":
            atom = self.atom()
            items.append(self.quantified(atom))
        return ("seq", items)

    def quantified(self, atom):
        ch = self.peek()
        if ch is None or ch not in "*+?{":
            return atom
        if atom[0] in ("start", "end"):
            raise self.error("a quantifier after an anchor")
        self.take()
        if ch == "*":
            lo, hi = 0, None
        elif ch == "+":
            lo, hi = 1, None
        elif ch == "?":
            lo, hi = 0, 1
        else:
            lo, hi = self.braces()
        if self.peek() == "?":              # lazy: the same set of names matches
            self.take()
        elif self.peek() == "+":
            raise self.error("a possessive quantifier")
        if self.peek() is not None and self.peek() in "*+{":
            raise self.error("two quantifiers in a row")
        if self.peek() == "?":
            raise self.error("two quantifiers in a row")
        return ("repeat", atom, lo, hi)

    def braces(self) -> tuple[int, int | None]:
        end = self.key.find("}", self.pos)
        body = self.key[self.pos:end] if end >= 0 else ""
        lo_s, comma, hi_s = body.partition(",")
        if end < 0 or not (lo_s.isdigit() or (comma and not lo_s)) or not (hi_s.isdigit() or not hi_s) \
                or not body.isascii():
            raise self.error("'{' that is not a {m}, {m,} or {m,n} quantifier")
        self.pos = end + 1
        lo = int(lo_s) if lo_s else 0
        hi = (int(hi_s) if hi_s else None) if comma else lo
        if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
            raise self.error(f"a repeat count above {MAX_REPEAT}")
        if hi is not None and hi < lo:
            raise self.error("a {m,n} with n < m")
        return lo, hi

    def atom(self):
        ch = self.take()
        if ch == "(":
            if self.peek() == "?":
                if self.key.startswith("?:", self.pos):
                    self.pos += 2
                else:
                    raise self.error("a '(?…)' construct (look-around, flags, named or atomic group)")
            node = self.alternation()
            if self.peek() != ")":
                raise self.error("missing ')'")
            self.take()
            return node
        if ch == "[":
            return ("chars", self.char_class())
        if ch == ".":
            return ("chars", lambda c: c != "\n")
        if ch == "^":
            return ("start",)
        if ch == "$":
            return ("end",)
        if ch == "\\":
            got = self.escape()
            return ("chars", _literal(got) if isinstance(got, str) else got)
        if ch in "*+?{":
            raise self.error("nothing to repeat")
        if ch in "}]":
            raise self.error(f"an unescaped {ch!r}")
        return ("chars", _literal(ch))

    def escape(self):
        """After a backslash: a class (\\d \\w \\s and their negations) as a predicate, or one literal
        character (escaped punctuation) as a string."""
        if self.peek() is None:
            raise self.error("a trailing backslash")
        ch = self.take()
        if ch in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[ch]
        if ch.isascii() and ch.isalnum():
            raise self.error(f"the escape \\{ch} (only \\d \\w \\s and escaped punctuation are module-name syntax)")
        if ord(ch) < 32:
            raise self.error("an escaped control character")
        return ch

    def class_item(self):
        """One member of a [...] set: a character (str) or a class escape (predicate)."""
        if self.key.startswith(("[", "--", "&&", "~~", "||"), self.pos):
            raise self.error("a nested set or a set operation inside [...]")
        ch = self.take()
        return self.escape() if ch == "\\" else ch

    def char_class(self):
        negate = self.peek() == "^"
        if negate:
            self.take()
        items = []
        first = True
        while True:
            if self.peek() is None:
                raise self.error("missing ']'")
            if self.peek() == "]" and not first:
                self.take()
                break
            first = False
            lo = self.class_item()
            if self.peek() == "-" and self.pos + 1 < len(self.key) and self.key[self.pos + 1] != "]":
                self.take()
                hi = self.class_item()
                if not isinstance(lo, str) or not isinstance(hi, str):
                    raise self.error("a range with \\d, \\w or \\s at one end")
                if hi < lo:
                    raise self.error(f"the range {lo}-{hi} runs backwards")
                items.append(lambda c, lo=lo, hi=hi: lo <= c <= hi)
            else:
                items.append(_literal(lo) if isinstance(lo, str) else lo)
        if negate:
            return lambda c: not any(p(c) for p in items)
        return lambda c: any(p(c) for p in items)


# --------------------------------------------------------------------------------------- automaton
_CHAR, _SPLIT, _START, _END, _MATCH = range(5)


class ModulePattern:
    """One rank/alpha pattern key, compiled for `matches(module_name)`."""

    def __init__(self, key: str, budget: WorkBudget | None = None):
        if not isinstance(key, str):
            raise PatternKeyError(f"a key must be a string, not {type(key).__name__}")
        if len(key) > MAX_KEY_LENGTH:
            raise PatternKeyError(f"the key is {len(key)} characters long (at most {MAX_KEY_LENGTH})")
        self.key = key
        self.budget = budget or WorkBudget()
        self.budget.spend(len(key))
        node = _Parser(key).parse()
        # (.*\.)?(key)$  — PEFT's wrapper around every key
        prefix = ("repeat", ("seq", [("repeat", ("chars", lambda c: c != "\n"), 0, None),
                                     ("chars", _literal("."))]), 0, 1)
        whole = ("seq", [prefix, node, ("end",)])
        self.kind: list[int] = []
        self.pred: list = []
        self.outs: list[list[int]] = []
        accept = self._state(_MATCH)
        self.start = self._build(whole, accept)
        self.match_bit = 1 << accept
        self._closures: dict[tuple[int, bool, bool], int] = {}
        self._steps: dict[tuple[int, str, bool], int] = {}

    # -- construction (right to left: each node is built in front of what follows it) ----------
    def _state(self, kind: int, pred=None, outs=None) -> int:
        if len(self.kind) >= MAX_STATES:
            raise PatternKeyError(f"the key expands to more than {MAX_STATES} states (repeat counts)")
        self.budget.spend(1)
        self.kind.append(kind)
        self.pred.append(pred)
        self.outs.append(list(outs or []))
        return len(self.kind) - 1

    def _build(self, node, nxt: int) -> int:
        tag = node[0]
        if tag == "chars":
            return self._state(_CHAR, node[1], [nxt])
        if tag == "start":
            return self._state(_START, None, [nxt])
        if tag == "end":
            return self._state(_END, None, [nxt])
        if tag == "seq":
            for item in reversed(node[1]):
                nxt = self._build(item, nxt)
            return nxt
        if tag == "alt":
            return self._state(_SPLIT, None, [self._build(b, nxt) for b in node[1]])
        _, body, lo, hi = node
        if hi is None:                              # body* after the mandatory copies
            loop = self._state(_SPLIT)
            self.outs[loop] = [self._build(body, loop), nxt]
            s = loop
        else:
            s = nxt
            for _ in range(hi - lo):                # optional copies: (body (body …)?)?
                s = self._state(_SPLIT, None, [self._build(body, s), nxt])
        for _ in range(lo):
            s = self._build(body, s)
        return s

    # -- running ---------------------------------------------------------------------------------
    def _closure(self, state: int, at_start: bool, at_end: bool) -> int:
        """Bit set of the states reachable from `state` without reading a character."""
        memo_key = (state, at_start, at_end)
        got = self._closures.get(memo_key)
        if got is not None:
            return got
        seen, stack, bits = {state}, [state], 0
        while stack:
            s = stack.pop()
            kind = self.kind[s]
            if kind in (_CHAR, _MATCH):
                bits |= 1 << s
                continue
            if (kind == _START and not at_start) or (kind == _END and not at_end):
                continue
            for t in self.outs[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        self.budget.spend(len(seen))
        self._closures[memo_key] = bits
        return bits

    def _advance(self, live: int, ch: str, at_end: bool) -> int:
        memo_key = (live, ch, at_end)
        got = self._steps.get(memo_key)
        if got is not None:
            return got
        out, rest, count = 0, live, 0
        while rest:
            low = rest & -rest
            s = low.bit_length() - 1
            rest ^= low
            count += 1
            if self.kind[s] == _CHAR and self.pred[s](ch):
                out |= self._closure(self.outs[s][0], False, at_end)
        self.budget.spend(count)
        if len(self._steps) > 65536:                # bound the memo, not the correctness
            self._steps.clear()
        self._steps[memo_key] = out
        return out

    def matches(self, name: str) -> bool:
        """`bool(re.match(rf"(.*\\.)?({key})$", name))`, in time linear in `len(name)`."""
        n = len(name)
        self.budget.spend(n)

        def at_end(p: int) -> bool:                 # where `$` matches: the end, or before a final newline
            return p == n or (p == n - 1 and name[-1] == "\n")

        live = self._closure(self.start, True, at_end(0))
        for i, ch in enumerate(name):
            if live & self.match_bit:
                return True
            live = self._advance(live, ch, at_end(i + 1))
            if not live:
                return False
        return bool(live & self.match_bit)


def _plain(key: str) -> str | None:
    """For a key of letters, digits, '_', '-', '.' (any character but a newline) and '\\.' (a dot):
    the key with its any-character positions as NUL, a fixed-length template; None for other keys."""
    out, i = [], 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and key[i + 1:i + 2] == ".":
            out.append(".")
            i += 2
            continue
        if ch == ".":
            out.append("\0")
        elif ch.isascii() and (ch.isalnum() or ch in "_-"):
            out.append(ch)
        else:
            return None
        i += 1
    return "".join(out)


class PatternTable:
    """A config's `rank_pattern` or `alpha_pattern`: keys in file order, the first match wins (PEFT).

    Most keys are plain module names ("model.layers.3.self_attn.q_proj"), often one per module: those
    are looked up in a table keyed by their fixed-length template, so a config with a key per module
    costs a few lookups per module; only the other keys run their automaton."""

    def __init__(self, patterns: dict, budget: WorkBudget | None = None):
        if len(patterns) > MAX_KEYS:
            raise PatternKeyError(f"it has {len(patterns)} keys (at most {MAX_KEYS})")
        self.budget = budget or WorkBudget()
        self.keys = list(patterns)
        self.values = list(patterns.values())
        self.automata: dict[int, ModulePattern] = {}
        # length -> {any-character positions -> {template: first index}}
        self.plain: dict[int, dict[tuple[int, ...], dict[str, int]]] = {}
        self.others: list[int] = []
        for i, key in enumerate(self.keys):
            template = _plain(key) if isinstance(key, str) and len(key) <= MAX_KEY_LENGTH else None
            if template is None:
                self.automata[i] = self._automaton(i)
                self.others.append(i)
                continue
            self.budget.spend(len(key))
            holes = tuple(j for j, c in enumerate(template) if c == "\0")
            self.plain.setdefault(len(template), {}).setdefault(holes, {}).setdefault(template, i)

    def _automaton(self, i: int) -> ModulePattern:
        if i not in self.automata:       # plain keys need one only for names with a newline
            try:
                self.automata[i] = ModulePattern(self.keys[i], self.budget)
            except PatternKeyError as exc:
                raise PatternKeyError(f"key {self.keys[i]!r} is not a module-name pattern: {exc}") from None
        return self.automata[i]

    def _first_plain(self, name: str) -> int | None:
        """The index of the first plain key matching `name` (which has no newline)."""
        best = None
        self.budget.spend(len(self.plain))
        for length, shapes in self.plain.items():  # (.*\.)? — the key covers the last `length` characters
            start = len(name) - length
            if start < 0 or (start > 0 and name[start - 1] != "."):
                continue
            suffix = name[start:]
            for holes, table in shapes.items():
                chars = list(suffix)
                for j in holes:
                    chars[j] = "\0"
                i = table.get("".join(chars))
                if i is not None and (best is None or i < best):
                    best = i
        return best

    def value(self, name: str, default):
        if len(name) > MAX_NAME_LENGTH:
            raise PatternKeyError(f"a module name of {len(name)} characters is too long to match against patterns "
                                  f"(at most {MAX_NAME_LENGTH})")
        try:
            if "\n" in name:                       # `.` and `$` treat newlines apart: every key runs
                order = range(len(self.keys))
                best = None
            else:
                best = self._first_plain(name)
                order = [i for i in self.others if best is None or i < best]
            for i in order:
                if self._automaton(i).matches(name):
                    return self.values[i]
        except PatternKeyError as exc:
            raise PatternKeyError(f"while matching {name[:80]!r}: {exc}") from None
        return default if best is None else self.values[best]
