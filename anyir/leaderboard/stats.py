"""Welch's t-test for "does A beat B over seeds", from summary statistics.

Two runs configurations A and B are each trained with several seeds; we have the mean, the
sample standard deviation (``ddof=1``) and the seed count of a metric on each side. Welch's test
does not assume equal variances:

    delta = mean_a - mean_b
    se    = sqrt(sd_a^2 / n_a + sd_b^2 / n_b)                       standard error of delta
    df    = se^4 / ((sd_a^2/n_a)^2 / (n_a - 1) + (sd_b^2/n_b)^2 / (n_b - 1))   (Welch-Satterthwaite)
    t     = delta / se
    t_crit = the (1 + level) / 2 quantile of Student's t with df degrees of freedom (two-sided)
    p     = 2 * P(T_df > |t|)
    CI    = delta -/+ t_crit * se

A difference is *significant* at ``level`` when ``p < 1 - level`` (equivalently ``|t| > t_crit``).
With two seeds per side df is near 2 and t_crit near 4.3, not the 2 of a normal approximation.

Not testable, so never significant: fewer than 2 seeds on either side (no spread to judge by),
or zero spread on both sides (se = 0: the seeds did not vary the result, so the data say nothing
about seed noise). ``reason`` says why. Pure functions; scipy is imported when first needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WelchResult:
    """Outcome of :func:`welch`; NaN fields where the test is not defined (see ``reason``)."""

    delta: float  # mean_a - mean_b
    se: float  # standard error of delta
    df: float  # Welch-Satterthwaite degrees of freedom
    t: float  # delta / se
    t_crit: float  # two-sided critical value at ``level``
    p_value: float  # two-sided
    significant: bool  # p_value < 1 - level
    ci_low: float
    ci_high: float
    level: float
    reason: str | None = None  # why the test could not be made, else None


def welch(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
          level: float = 0.95) -> WelchResult:
    """Welch's two-sided t-test of ``mean_a - mean_b`` from means, sample sds and counts."""
    _check(mean_a, "mean_a", finite=True)
    _check(mean_b, "mean_b", finite=True)
    _check(sd_a, "sd_a", finite=True, nonnegative=True)
    _check(sd_b, "sd_b", finite=True, nonnegative=True)
    for name, n in (("n_a", n_a), ("n_b", n_b)):
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"welch: {name}={n!r} must be a whole number of seeds >= 0")
    if not 0 < level < 1:
        raise ValueError(f"welch: level={level!r} must be in (0, 1), e.g. 0.95")
    delta = float(mean_a - mean_b)
    nan = math.nan
    if n_a < 2 or n_b < 2:
        return WelchResult(delta, nan, nan, nan, nan, nan, False, nan, nan, level,
                           f"not testable: needs at least 2 seeds on each side (have {int(n_a)} and {int(n_b)})")
    var_a, var_b = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(var_a + var_b)
    if se == 0:
        return WelchResult(delta, 0.0, nan, nan, nan, nan, False, nan, nan, level,
                           "not testable: zero spread on both sides (the seeds did not change the result)")
    df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    from scipy.stats import t as student_t

    t = delta / se
    t_crit = float(student_t.ppf(0.5 + level / 2, df))
    p = float(2 * student_t.sf(abs(t), df))
    return WelchResult(delta, se, df, t, t_crit, p, p < 1 - level, delta - t_crit * se, delta + t_crit * se, level)


def welch_samples(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> WelchResult:
    """:func:`welch` from the raw per-seed values of each side."""
    def summary(values: Sequence[float]) -> tuple[float, float, int]:
        n = len(values)
        mean = math.fsum(values) / n if n else math.nan
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        return mean, sd, n

    mean_a, sd_a, n_a = summary(a)
    mean_b, sd_b, n_b = summary(b)
    if n_a == 0 or n_b == 0:
        raise ValueError(f"welch_samples: both sides need values (have {n_a} and {n_b})")
    return welch(mean_a, sd_a, n_a, mean_b, sd_b, n_b, level)


def _check(value: float, name: str, finite: bool = False, nonnegative: bool = False) -> None:
    if finite and not math.isfinite(value):
        raise ValueError(f"welch: {name}={value!r} must be a finite number")
    if nonnegative and value < 0:
        raise ValueError(f"welch: {name}={value!r} is a standard deviation and must be >= 0")
