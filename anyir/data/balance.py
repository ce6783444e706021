"""Balance: how much of each task the model sees, from one spec grammar and one strategy registry.

Grammar (:func:`parse_balance` is the only parser; ``str(spec)`` gives the canonical spelling)::

    spec     := static | adaptive
    static   := natural | uniform | promptir | temperature:T | task=w[,task=w...]
    adaptive := NAME[(key=value[,key=value...])][:static]      e.g. adaptive, adaptive:natural,
                                                                dro(floor=0.3), progress:natural

Static strategies resolve to weights: ``natural`` (available samples x repeat factors),
``uniform``, ``temperature:T`` (p_i ~ n_i^(1/T)), ``promptir`` (the PromptIR/AdaIR repetition
factors), explicit weights (normalised). Adaptive strategies start from their static base
(default ``uniform``) and change the weights while training; :data:`STRATEGIES` lists each with
its parameters and their defaults. The training layer maps an adaptive name to its controller
(``anyir.train.controllers``); this module only knows the grammar, so the data layer never imports
the training layer.

:func:`resolve_weights` turns a spec and per-task counts into weights summing to 1 (an adaptive
spec: its starting weights); :func:`epoch_counts` turns weights into exact integer counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# PromptIR/AdaIR `dataset_utils.py` repetition factors (docs/tracks.md, the paper scale). Our denoise samples are
# already one per (clean image, sigma), so x3 per sigma list is a factor of 3 here.
PROMPTIR_FACTORS: dict[str, float] = {"denoise": 3.0, "derain": 120.0, "dehaze": 1.0, "deblur": 5.0, "lowlight": 20.0}


@dataclass(frozen=True)
class Strategy:
    """One entry of the registry: a name, what it does, and (adaptive ones) its parameters' defaults.

    A parameter whose default is an ``int`` takes only whole numbers; ``bounds`` are inclusive.
    """

    name: str
    adaptive: bool
    summary: str
    params: dict[str, float | int] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("natural", False, "available samples x the recipe's repeat factors"),
    Strategy("uniform", False, "the same weight for every task"),
    Strategy("promptir", False, "the PromptIR/AdaIR repetition factors (x3 denoise, x120 derain, ...)"),
    Strategy("temperature", False, "temperature:T, weights ~ (samples x repeats)^(1/T)"),
    Strategy("explicit", False, "task=w,task=w: the given weights, normalised"),
    Strategy("adaptive", True, "tilt toward the tasks least restored relative to the identity "
             "(training loss / loss of the degraded input), bounded by exp(eta)",
             {"eta": 2.0, "smoothing": 0.1, "ema": 0.5, "reference_samples": 32},
             {"eta": (0.0, 20.0), "smoothing": (0.0, 1.0), "ema": (0.0, 0.99), "reference_samples": (1, 4096)}),
    Strategy("progress", True, "learning progress: weight follows how fast each task's loss on a fixed probe "
             "set of training crops moves (down: learning, up: forgetting), per unit of its weight",
             {"eta": 1.0, "floor": 0.5, "ema": 0.5, "probe": 8},
             {"eta": (0.0, 20.0), "floor": (0.0, 1.0), "ema": (0.0, 0.99), "probe": (1, 1024)}),
    Strategy("dro", True, "group DRO: exponentiated-gradient ascent on each task's probe loss / identity loss, "
             "no task below floor x its base weight",
             {"eta": 1.0, "floor": 0.5, "probe": 8},
             {"eta": (0.0, 20.0), "floor": (0.0, 1.0), "probe": (1, 1024)}),
)}
STATIC_FORMS = ("natural", "uniform", "temperature:T", "promptir", "task=w,...")
ADAPTIVE_FORMS = tuple(f"{n}[(key=value,...)][:static]" for n, s in STRATEGIES.items() if s.adaptive)
_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?$")


class BalanceError(ValueError):
    """A balance spec is malformed or does not fit the tasks at hand."""


@dataclass(frozen=True)
class BalanceSpec:
    """A parsed balance spec. ``str(spec)`` gives back the canonical spec string.

    Static specs set ``strategy`` (and ``temperature`` / ``weights``); adaptive ones also set
    ``params`` (every parameter, defaults filled in) and ``base`` (the static spec they start from).
    """

    strategy: str  # a key of STRATEGIES
    temperature: float | None = None
    weights: dict[str, float] = field(default_factory=dict)
    params: dict[str, float | int] = field(default_factory=dict)
    base: BalanceSpec | None = None

    @property
    def adaptive(self) -> bool:
        """True when the weights change while training (a controller drives them)."""
        return STRATEGIES[self.strategy].adaptive

    @property
    def start(self) -> BalanceSpec:
        """The static spec the weights start from: the base of an adaptive spec, else the spec itself."""
        return self.base if self.base is not None else self

    def __str__(self) -> str:
        if self.adaptive:
            defaults = STRATEGIES[self.strategy].params
            changed = [f"{k}={v:g}" for k, v in sorted(self.params.items()) if v != defaults[k]]
            name = self.strategy + (f"({','.join(changed)})" if changed else "")
            base = str(self.start)
            return name if base == "uniform" else f"{name}:{base}"
        if self.strategy == "temperature":
            return f"temperature:{self.temperature:g}"
        if self.strategy == "explicit":
            return ",".join(f"{t}={w:g}" for t, w in sorted(self.weights.items()))
        return self.strategy


def parse_balance(spec: str | BalanceSpec) -> BalanceSpec:
    """Parse a balance spec string (see the module docstring). Raises BalanceError naming the value
    and the accepted forms."""
    if isinstance(spec, BalanceSpec):
        return spec
    text = str(spec).strip()
    head, colon, rest = text.partition(":")
    found = _NAME.match(head.strip())
    if found and found.group(1) in STRATEGIES and STRATEGIES[found.group(1)].adaptive:
        base = _parse_static(rest, spec) if colon else BalanceSpec("uniform")
        name = found.group(1)
        return BalanceSpec(name, params=_parse_params(name, found.group(2), spec), base=base)
    return _parse_static(text, spec)


def _parse_static(text: str, spec: object) -> BalanceSpec:
    text = text.strip()
    if text in ("natural", "uniform", "promptir"):
        return BalanceSpec(text)
    if text.startswith("temperature:"):
        try:
            t = float(text.split(":", 1)[1])
        except ValueError:
            t = float("nan")
        if not (t > 0 and math.isfinite(t)):
            raise BalanceError(f"balance {spec!r}: temperature must be a positive number, e.g. temperature:2")
        return BalanceSpec("temperature", temperature=t)
    if "=" in text and "(" not in text and ":" not in text:
        return BalanceSpec("explicit", weights=_parse_explicit(text, spec))
    head = _NAME.match(text.partition(":")[0].strip())
    if head and head.group(1) in STRATEGIES and STRATEGIES[head.group(1)].adaptive:
        raise BalanceError(f"balance {spec!r}: an adaptive strategy cannot be the base of another; "
                           f"the base is static: {', '.join(STATIC_FORMS)}")
    raise BalanceError(f"balance {spec!r}: unknown strategy; use one of {', '.join(STATIC_FORMS)}, "
                       f"or an adaptive one: {', '.join(ADAPTIVE_FORMS)}")


def _parse_explicit(text: str, spec: object) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in text.split(","):
        task, _, value = part.partition("=")
        task = task.strip()
        try:
            w = float(value)
        except ValueError:
            raise BalanceError(f"balance {spec!r}: weight for {task!r} is {value!r}, not a number") from None
        if not task or w < 0 or not math.isfinite(w) or task in weights:
            raise BalanceError(f"balance {spec!r}: each entry must be task=weight with a unique task and weight >= 0")
        weights[task] = w
    if sum(weights.values()) <= 0:
        raise BalanceError(f"balance {spec!r}: weights sum to 0; give at least one positive weight")
    return weights


def _parse_params(name: str, text: str | None, spec: object) -> dict[str, float | int]:
    """``eta=1,floor=0.3`` -> every parameter of the strategy, defaults filled in, types and bounds checked."""
    strategy = STRATEGIES[name]
    params: dict[str, float | int] = dict(strategy.params)
    known = ", ".join(f"{k}={v:g}" for k, v in strategy.params.items())
    for part in (p for p in (text or "").split(",") if p.strip()):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or key not in strategy.params:
            raise BalanceError(f"balance {spec!r}: {name} takes key=value parameters {known}; got {part.strip()!r}")
        try:
            number = float(value)
        except ValueError:
            raise BalanceError(f"balance {spec!r}: {name} parameter {key}={value!r} is not a number") from None
        low, high = strategy.bounds.get(key, (-math.inf, math.inf))
        whole = isinstance(strategy.params[key], int)
        if not (math.isfinite(number) and low <= number <= high) or (whole and number != int(number)):
            kind = "a whole number" if whole else "a number"
            raise BalanceError(f"balance {spec!r}: {name} parameter {key} must be {kind} in [{low:g}, {high:g}], "
                               f"got {value}")
        params[key] = int(number) if whole else number
    return params


def split_specs(text: str) -> list[str]:
    """A list of specs -> the specs: ``"natural,uniform,derain=2,dehaze=1,dro(floor=0.3):natural"`` ->
    ``["natural", "uniform", "derain=2,dehaze=1", "dro(floor=0.3):natural"]``. Commas inside
    parentheses belong to parameters; ``task=w`` items after an explicit balance (or an adaptive
    spec whose base is explicit) extend it. Separate two explicit balances with ``;``."""
    out: list[str] = []
    for group in (g for g in text.split(";") if g.strip()):
        start = len(out)
        for item in _top_level_items(group):
            if _is_weight(item) and len(out) > start and _takes_weights(out[-1]):
                out[-1] += "," + item
            else:
                out.append(item)
    return out


def _top_level_items(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [i.strip() for i in items if i.strip()]


def _is_weight(item: str) -> bool:
    return bool(re.fullmatch(r"[^=:()\s]+\s*=\s*[^=:()]+", item))


def _takes_weights(spec: str) -> bool:
    """True when ``spec`` ends in explicit weights (``a=1`` or ``dro:a=1``), so ``b=2`` continues it."""
    tail = spec.split(")")[-1]  # what follows an adaptive strategy's parameters
    if ":" in tail:
        tail = tail.rsplit(":", 1)[1]
    elif ")" in spec:
        return False  # NAME(params) with no base
    return bool(tail) and all(_is_weight(part) for part in tail.split(","))


def effective_counts(spec: BalanceSpec, counts: dict[str, int], repeats: dict[str, float] | None = None) -> dict[str, float]:
    """Per-task samples per epoch before normalisation (natural: counts x repeats; promptir: x factors)."""
    if spec.strategy == "promptir":
        unknown = sorted(set(counts) - set(PROMPTIR_FACTORS))
        if unknown:
            raise BalanceError(f"balance 'promptir' has no repetition factor for tasks {unknown}; "
                               f"it covers {sorted(PROMPTIR_FACTORS)}. Use natural, uniform or explicit weights")
        return {t: n * PROMPTIR_FACTORS[t] for t, n in counts.items()}
    repeats = repeats or {}
    return {t: n * repeats.get(t, 1.0) for t, n in counts.items()}


def resolve_weights(spec: BalanceSpec | str, counts: dict[str, int], repeats: dict[str, float] | None = None) -> dict[str, float]:
    """Per-task weights (summing to 1) for the tasks in ``counts``, sorted by task name. An adaptive
    spec gives the weights it starts from (its base's)."""
    spec = parse_balance(spec).start
    if not counts:
        raise BalanceError("no tasks to balance: the shard set has no samples in this split")
    tasks = sorted(counts)
    if spec.strategy == "uniform":
        raw = {t: 1.0 for t in tasks}
    elif spec.strategy == "explicit":
        missing, extra = sorted(set(tasks) - set(spec.weights)), sorted(set(spec.weights) - set(tasks))
        if missing or extra:
            raise BalanceError(f"balance {str(spec)!r}: tasks {tasks} need a weight each; "
                               f"missing {missing}, unknown {extra}")
        raw = {t: spec.weights[t] for t in tasks}
    else:
        eff = effective_counts(spec, counts, repeats)
        power = 1.0 / spec.temperature if spec.strategy == "temperature" else 1.0
        raw = {t: eff[t] ** power if eff[t] > 0 else 0.0 for t in tasks}
    total = sum(raw.values())
    if total <= 0:
        raise BalanceError(f"balance {str(spec)!r}: every task has weight 0 (counts {counts})")
    return {t: raw[t] / total for t in tasks}


def with_fixed_base(spec: BalanceSpec | str, counts: dict[str, int], repeats: dict[str, float] | None) -> BalanceSpec:
    """``spec`` with its static part replaced by the explicit weights it resolves to for ``counts`` and
    ``repeats``: the same mixture on a shard set whose own repeat factors differ (a benchmark
    submission's repeat overrides). Specs that do not read repeat factors come back unchanged."""
    spec = parse_balance(spec)
    if spec.start.strategy not in ("natural", "temperature"):
        return spec
    fixed = BalanceSpec("explicit", weights={t: round(w, 6) for t, w in resolve_weights(spec, counts, repeats).items()})
    return BalanceSpec(spec.strategy, params=spec.params, base=fixed) if spec.adaptive else fixed


def epoch_counts(weights: dict[str, float], total: int) -> dict[str, int]:
    """Exact integer counts summing to ``total``: floors, then the largest remainders get +1
    (ties broken by task name, so every rank computes the same plan)."""
    if total < 0:
        raise BalanceError(f"total must be >= 0, got {total}")
    norm = sum(weights.values())
    if norm <= 0:
        raise BalanceError(f"weights sum to {norm}; need a positive sum")
    exact = {t: total * w / norm for t, w in weights.items()}
    counts = {t: int(math.floor(x)) for t, x in exact.items()}
    short = total - sum(counts.values())
    for t in sorted(exact, key=lambda t: (-(exact[t] - counts[t]), t))[:short]:
        counts[t] += 1
    return dict(sorted(counts.items()))


def natural_total(spec: BalanceSpec | str, counts: dict[str, int], repeats: dict[str, float] | None = None) -> int:
    """The samples per epoch a strategy implies by itself (natural/promptir: the repeated counts;
    others: the available samples), the default ``total`` for :func:`epoch_counts`."""
    spec = parse_balance(spec).start
    if spec.strategy in ("natural", "promptir"):
        return int(round(sum(effective_counts(spec, counts, repeats).values())))
    return int(sum(counts.values()))
