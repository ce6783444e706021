"""Balance: how much of each task the model sees per epoch.

A spec string names a strategy: ``natural`` (available samples x repeat factors), ``uniform``,
``temperature:T`` (p_i ~ n_i^(1/T)), ``promptir`` (the PromptIR/AdaIR repetition factors) or
explicit weights ``task=w,task=w`` (normalised). :func:`resolve_weights` turns a spec and the
per-task counts into weights summing to 1; :func:`epoch_counts` into exact integer counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# PromptIR/AdaIR `dataset_utils.py` repetition factors (protocols.md section 2). Our denoise
# samples are already one per (clean image, sigma), so x3 per sigma list is a factor of 3 here.
PROMPTIR_FACTORS: dict[str, float] = {"denoise": 3.0, "derain": 120.0, "dehaze": 1.0, "deblur": 5.0, "lowlight": 20.0}
STRATEGIES = ("natural", "uniform", "temperature:T", "promptir", "task=w,...")


class BalanceError(ValueError):
    """A balance spec is malformed or does not fit the tasks at hand."""


@dataclass(frozen=True)
class BalanceSpec:
    """A parsed balance spec. ``str(spec)`` gives back the canonical spec string."""

    strategy: str  # natural | uniform | temperature | promptir | explicit
    temperature: float | None = None
    weights: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.strategy == "temperature":
            return f"temperature:{self.temperature:g}"
        if self.strategy == "explicit":
            return ",".join(f"{t}={w:g}" for t, w in sorted(self.weights.items()))
        return self.strategy


def parse_balance(spec: str) -> BalanceSpec:
    """Parse a balance spec string. Raises BalanceError naming the value and the accepted forms."""
    text = str(spec).strip()
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
    if "=" in text:
        return BalanceSpec("explicit", weights=_parse_explicit(text, spec))
    raise BalanceError(f"balance {spec!r}: unknown strategy; use one of {', '.join(STRATEGIES)}")


def _parse_explicit(text: str, spec: str) -> dict[str, float]:
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
    """Per-task weights (summing to 1) for the tasks in ``counts``, sorted by task name."""
    spec = parse_balance(spec) if isinstance(spec, str) else spec
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
    spec = parse_balance(spec) if isinstance(spec, str) else spec
    if spec.strategy in ("natural", "promptir"):
        return int(round(sum(effective_counts(spec, counts, repeats).values())))
    return int(sum(counts.values()))
