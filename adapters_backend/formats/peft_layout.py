"""PEFT's on-disk layout (adapter_config.json + adapter_model.safetensors) → canonical modules.

Shared by the PEFT and Ludwig format plugins (a Ludwig model folder holds a PEFT save in
`model_weights/`), and usable by third-party plugins for formats that wrap PEFT saves.

Scales follow PEFT exactly: `lora_alpha / r` (or `/ √r` with rsLoRA), per module through
`rank_pattern` / `alpha_pattern` (first matching key in file order wins, as in PEFT; keys matched in
bounded time by module_patterns.py, not Python's backtracking `re`); LoHa and LoKr
`alpha / r`; AdaLoRA `lora_alpha / (init_r + 1e-5)` with E folded into A by `variants.lowrank`.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..core.adapter import ModuleDelta
from ..core.variants import ADALORA_EPS
from ..errors import AdapterFormatError
from ..json_input import JsonInputError, read_json_file
from .module_patterns import PatternKeyError, PatternTable, WorkBudget
from .safetensors_io import SafetensorsSource

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_WEIGHTS_NAME = "adapter_model.bin"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
SUPPORTED_TYPES = ("LORA", "ADALORA", "LOHA", "LOKR")
PREFIX = "base_model.model."

# (key suffix, role, family), longest first where one suffix ends another.
_SUFFIXES = (
    (".lora_A.weight", "A", "lora"), (".lora_B.weight", "B", "lora"), (".lora_B.bias", "bias", "lora"),
    (".lora_magnitude_vector.weight", "magnitude", "lora"), (".lora_magnitude_vector", "magnitude", "lora"),
    (".lora_embedding_A", "A", "embedding"), (".lora_embedding_B", "B", "embedding"),
    (".lora_A", "A", "adalora"), (".lora_E", "E", "adalora"), (".lora_B", "B", "adalora"),
    (".hada_w1_a", "w1a", "loha"), (".hada_w1_b", "w1b", "loha"),
    (".hada_w2_a", "w2a", "loha"), (".hada_w2_b", "w2b", "loha"),
    (".lokr_w1_a", "w1a", "lokr"), (".lokr_w1_b", "w1b", "lokr"), (".lokr_w1", "w1", "lokr"),
    (".lokr_w2_a", "w2a", "lokr"), (".lokr_w2_b", "w2b", "lokr"), (".lokr_w2", "w2", "lokr"),
    (".token_adapter.trainable_tokens_delta", "delta", "tokens"),
    (".base_layer.weight", "saved_weight", "saved"), (".base_layer.bias", "saved_bias", "saved"),
    (".weight", "weight", "full"), (".bias", "bias", "full"),
)
_CONV_ONLY = ("hada_t1", "hada_t2", "lokr_t2", "lora_mid")


def read_config(path: Path) -> dict:
    """adapter_config.json as a dict, or an AdapterFormatError naming the file and the problem."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise AdapterFormatError(path, f"is {size} bytes; an adapter config is a few kB")
        data = read_json_file(path, MAX_CONFIG_BYTES)
    except AdapterFormatError:
        raise
    except (OSError, JsonInputError) as exc:
        raise AdapterFormatError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AdapterFormatError(path, f"must hold a JSON object, not {type(data).__name__}")
    return data


def pattern_table(patterns, field: str, config_path: Path, budget: WorkBudget | None = None) -> PatternTable | None:
    """A config's rank_pattern / alpha_pattern, checked and compiled (None when empty)."""
    if not patterns:
        return None
    if not isinstance(patterns, dict):
        raise AdapterFormatError(config_path, f"{field} must be an object, not {type(patterns).__name__}")
    try:
        return PatternTable(patterns, budget)
    except PatternKeyError as exc:
        raise AdapterFormatError(config_path, f"{field}: {exc}") from None


def pattern_value(table: PatternTable | None, field: str, name: str, default, config_path: Path):
    """PEFT's `get_pattern_key`: the value of the first key (file order) with
    re.match(rf"(.*\\.)?({key})$", name), else `default`."""
    if table is None:
        return default
    try:
        return table.value(name, default)
    except PatternKeyError as exc:
        raise AdapterFormatError(config_path, f"{field}: {exc}") from None


def _number(value, what: str, config_path: Path, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AdapterFormatError(config_path, f"{what} must be a number, got {value!r}")
    if positive and value <= 0:
        raise AdapterFormatError(config_path, f"{what} must be positive, got {value!r}")
    return float(value)


def split_key(key: str) -> tuple[str, str, str] | None:
    """'base_model.model.X.lora_A.weight' → ('X', 'A', 'lora'); None for a key of no known kind."""
    name = key[len(PREFIX):] if key.startswith(PREFIX) else key
    name = name.replace(".default.", ".").removesuffix(".default")   # adapter name, in very old saves
    for suffix, role, family in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], role, family
    return None


class _Module:
    def __init__(self):
        self.roles: dict[str, str] = {}
        self.families: set[str] = set()


def _shape(source: SafetensorsSource, key: str, ndim: tuple[int, ...], weights: Path) -> tuple[int, ...]:
    shape = tuple(source.shape(key))
    if len(shape) not in ndim or any(d <= 0 for d in shape):
        raise AdapterFormatError(weights, f"tensor '{key}' has shape {list(shape)}, expected a "
                                          f"{' or '.join(str(n) for n in ndim)}-D tensor with no empty dimension")
    if source.dtype(key) not in ("F32", "F16", "BF16", "F64"):
        raise AdapterFormatError(weights, f"tensor '{key}' is {source.dtype(key)}; adapter factors are floats")
    return shape


def _check(cond: bool, weights: Path, module: str, problem: str) -> None:
    if not cond:
        raise AdapterFormatError(weights, f"module {module}: {problem}")


def _group(source: SafetensorsSource, weights: Path, warnings: list[str]) -> dict[str, _Module]:
    modules: dict[str, _Module] = {}
    unknown: list[str] = []
    for key in source.keys():
        if any(part in key for part in _CONV_ONLY):
            raise AdapterFormatError(weights, f"tensor '{key}' is a convolution (Tucker) factor; LoRA Deck adapts "
                                              "language models, whose layers are linear")
        parts = split_key(key)
        if parts is None:
            unknown.append(key)
            continue
        name, role, family = parts
        mod = modules.setdefault(name, _Module())
        if role in mod.roles and family != "full":
            raise AdapterFormatError(weights, f"module {name} has two '{role}' tensors ({mod.roles[role]}, {key})")
        mod.roles[role] = key
        mod.families.add(family)
    if unknown:
        warnings.append(f"ignored {len(unknown)} tensor(s) of no known kind (first: {unknown[0]})")
    return modules


def modules_from_peft(config: dict, source: SafetensorsSource, config_path: Path, weights: Path,
                      warnings: list[str]) -> dict[str, ModuleDelta]:
    """Canonical modules of a PEFT save, in file order."""
    peft_type = str(config.get("peft_type") or "LORA").upper()
    if peft_type not in SUPPORTED_TYPES:
        raise AdapterFormatError(config_path, f"PEFT type {peft_type} is not a LoRA-family adapter; LoRA Deck reads "
                                              f"{', '.join(SUPPORTED_TYPES)}")
    if peft_type == "ADALORA":
        r_default = config.get("init_r", 12)
        alpha_default = config.get("lora_alpha", 8)
    elif peft_type in ("LOHA", "LOKR"):
        r_default, alpha_default = config.get("r", 8), config.get("alpha", 8)
    else:
        r_default, alpha_default = config.get("r", 8), config.get("lora_alpha", 8)
    r_default = _number(r_default, "r", config_path)
    alpha_default = _number(alpha_default, "alpha", config_path, positive=False)
    rslora = bool(config.get("use_rslora")) and peft_type == "LORA"
    use_dora = bool(config.get("use_dora")) and peft_type == "LORA"
    invocation = config.get("alora_invocation_tokens")
    if invocation is not None and not (isinstance(invocation, list) and all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**32 for t in invocation)):
        raise AdapterFormatError(config_path, f"alora_invocation_tokens must be a list of token ids, not "
                                              f"{invocation!r:.60}")
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(("pissa", "olora", "corda")):
        warnings.append(f"init_lora_weights={init}: unless it was converted when saved, this adapter expects a base "
                        "whose weights were modified at training time")

    budget = WorkBudget()          # shared: all keys × all module names of this config
    ranks = pattern_table(config.get("rank_pattern"), "rank_pattern", config_path, budget) \
        if peft_type != "ADALORA" else None
    alphas = pattern_table(config.get("alpha_pattern"), "alpha_pattern", config_path, budget)
    out: dict[str, ModuleDelta] = {}
    for name, m in _group(source, weights, warnings).items():
        fams, roles = m.families, m.roles
        lowrank_fams = fams - {"full", "saved", "tokens"}
        if "tokens" in fams:
            warnings.append(f"{name}: trainable token rows are not supported and were skipped")
            if not lowrank_fams:
                continue
        if len(lowrank_fams) > 1:
            raise AdapterFormatError(weights, f"module {name} mixes tensor kinds {sorted(lowrank_fams)}")
        if not lowrank_fams:
            if "saved" in fams:     # only a saved copy of the module (resized vocab): a replacement
                roles = {k.removeprefix("saved_"): v for k, v in roles.items()}
            out[name] = _full_module(name, roles, source, weights)
            continue
        if "saved" in fams:
            warnings.append(f"{name}: a copy of the base weight saved beside the LoRA was ignored")
        family = lowrank_fams.pop()
        roles = {k: v for k, v in roles.items() if not k.startswith("saved_")}
        r_conf = _number(pattern_value(ranks, "rank_pattern", name, r_default, config_path),
                         f"rank of {name}", config_path)
        alpha = _number(pattern_value(alphas, "alpha_pattern", name, alpha_default, config_path),
                        f"alpha of {name}", config_path, positive=False)
        out[name] = _lowrank_module(name, family, roles, source, weights, peft_type, r_conf, alpha,
                                    rslora, use_dora, fan_in_fan_out)
    return out


def _full_module(name: str, roles: dict, source, weights: Path) -> ModuleDelta:
    if "weight" in roles:
        shape = _shape(source, roles["weight"], (1, 2), weights)
        out_f, in_f = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], 1)
        return ModuleDelta(name, "full", out_f, in_f, 0, None, 1.0, dict(roles), source.dtype(roles["weight"]))
    shape = _shape(source, roles["bias"], (1,), weights)
    return ModuleDelta(name, "bias", shape[0], 0, 0, None, 1.0, {"bias": roles["bias"]}, source.dtype(roles["bias"]))


def _lowrank_module(name, family, roles, source, weights, peft_type, r_conf, alpha, rslora, use_dora,
                    fan_in_fan_out) -> ModuleDelta:
    dtype = source.dtype(next(iter(roles.values())))
    need = {"lora": ("A", "B"), "embedding": ("A", "B"), "adalora": ("A", "E", "B"),
            "loha": ("w1a", "w1b", "w2a", "w2b")}.get(family, ())
    missing = [r for r in need if r not in roles]
    _check(not missing, weights, name, f"missing tensor(s) {missing} of a {family} update")
    extra: dict = {"rslora": rslora} if rslora else {}
    if family in ("lora", "embedding", "adalora"):
        a = _shape(source, roles["A"], (2,), weights)
        b = _shape(source, roles["B"], (2,), weights)
        _check(a[0] == b[1], weights, name, f"lora_A has {a[0]} rows but lora_B has {b[1]} columns")
        rank = a[0]
        if family == "adalora":
            e = _shape(source, roles["E"], (1, 2), weights)
            _check(e[0] == rank, weights, name, f"lora_E has {e[0]} entries for rank {rank}")
            c = (alpha if alpha > 0 else r_conf) / (r_conf + ADALORA_EPS)
            return ModuleDelta(name, "adalora", b[0], a[1], rank, alpha, c, dict(roles), dtype, fan_in_fan_out,
                               extra={"init_r": int(r_conf)})
        _check(rank == r_conf, weights, name,             # r 8.5 or 1e308 is no rank of 8
               f"tensors have rank {rank} but the config gives rank {r_conf:g} (rank_pattern?)")
        c = alpha / (math.sqrt(r_conf) if rslora else r_conf)
        if family == "embedding":
            # lora_embedding_A (r, vocab), lora_embedding_B (dim, r): ΔE is (vocab, dim)
            return ModuleDelta(name, "embedding", a[1], b[0], rank, alpha, c,
                               {k: roles[k] for k in ("A", "B")}, dtype, extra=extra)
        variant = "lora"
        if "magnitude" in roles:
            mag = _shape(source, roles["magnitude"], (1, 2), weights)
            _check(int(math.prod(mag)) == b[0], weights, name, f"DoRA magnitude has {mag} entries for {b[0]} rows")
            variant = "dora"
        elif use_dora:
            raise AdapterFormatError(weights, f"module {name}: use_dora is set but lora_magnitude_vector is missing")
        kept = {k: roles[k] for k in ("A", "B", "magnitude", "bias") if k in roles}
        if "bias" in kept:
            extra["lora_bias"] = True
        return ModuleDelta(name, variant, b[0], a[1], rank, alpha, c, kept, dtype, fan_in_fan_out, extra=extra)
    if family == "loha":
        w1a, w1b = _shape(source, roles["w1a"], (2,), weights), _shape(source, roles["w1b"], (2,), weights)
        w2a, w2b = _shape(source, roles["w2a"], (2,), weights), _shape(source, roles["w2b"], (2,), weights)
        _check(w1a[1] == w1b[0] and w2a[1] == w2b[0] and w1a[0] == w2a[0] and w1b[1] == w2b[1], weights, name,
               f"LoHa factor shapes do not fit together: {w1a}, {w1b}, {w2a}, {w2b}")
        return ModuleDelta(name, "loha", w1a[0], w1b[1], w1b[0], alpha, alpha / r_conf,
                           {k: roles[k] for k in ("w1a", "w1b", "w2a", "w2b")}, dtype, fan_in_fan_out)
    return lokr_module(name, roles, source, weights, alpha / r_conf, alpha, dtype, fan_in_fan_out)


def lokr_module(name: str, roles: dict, source, weights: Path, scale: float, alpha, dtype: str,
                fan_in_fan_out: bool = False, extra: dict | None = None) -> ModuleDelta:
    """A LoKr module from its factor keys (w1 | w1a+w1b, w2 | w2a+w2b), shapes checked."""
    dims, rank = [], 1
    for f in ("w1", "w2"):
        if f in roles:
            s = _shape(source, roles[f], (2,), weights)
            dims.append(s)
            rank *= min(s)
        elif f"{f}a" in roles and f"{f}b" in roles:
            sa, sb = _shape(source, roles[f"{f}a"], (2,), weights), _shape(source, roles[f"{f}b"], (2,), weights)
            _check(sa[1] == sb[0], weights, name, f"LoKr {f}_a {sa} and {f}_b {sb} do not fit together")
            dims.append((sa[0], sb[1]))
            rank *= sa[1]
        else:
            raise AdapterFormatError(weights, f"module {name}: LoKr factor {f} is missing")
    (a, c), (b, d) = dims
    kept = {k: roles[k] for k in ("w1", "w1a", "w1b", "w2", "w2a", "w2b", "magnitude") if k in roles}
    return ModuleDelta(name, "lokr", a * b, c * d, rank, alpha, scale, kept, dtype, fan_in_fan_out,
                       extra=dict(extra or {}))


def open_weights(folder: Path, warnings: list[str] | None = None) -> tuple[Path, SafetensorsSource]:
    """The safetensors weights of a PEFT save. A pickle-only save (adapter_model.bin) is converted by
    `safe_pickle` (torch's weights-only loader in a child process) or refused; never unpickled here."""
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickled = folder / PICKLE_WEIGHTS_NAME
        if pickled.is_file():
            from .safe_pickle import pickle_to_safetensors
            converted = pickle_to_safetensors(pickled)
            if warnings is not None:
                warnings.append(f"{PICKLE_WEIGHTS_NAME} (a pickle) was read with torch's weights-only loader "
                                "and converted to safetensors")
            return pickled, SafetensorsSource(converted)
        raise AdapterFormatError(folder, f"has {CONFIG_NAME} but no {WEIGHTS_NAME}")
    return weights, SafetensorsSource(weights)


CARD_KEYS = ("license", "base_model", "library_name")
MAX_FRONT_MATTER = 64 * 1024


def card_metadata(folder: Path) -> dict:
    """license / base_model / library_name from a model card's YAML front matter (README.md), if any.

    The front matter (bounded to 64 kB) is parsed with PyYAML's safe loader, imported only here; a
    list gives its first item, and anything unreadable is simply no metadata."""
    readme = folder / "README.md"
    try:
        if not readme.is_file():
            return {}
        with open(readme, encoding="utf-8", errors="replace") as f:
            head = f.read(MAX_FRONT_MATTER)
    except OSError:
        return {}
    if not head.startswith("---"):
        return {}
    body, sep, _rest = head[3:].partition("\n---")
    if not sep:
        return {}
    import yaml
    try:
        data = yaml.safe_load(body)
    except (yaml.YAMLError, RecursionError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for key in CARD_KEYS:
        value = data.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            out[key] = str(value).strip()
    return out
