"""Welch's t-test from summary statistics, checked against scipy on raw samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from anyir.leaderboard.stats import welch, welch_samples


@pytest.mark.parametrize("a,b", [
    ([30.1, 30.5, 29.8], [29.0, 29.9, 29.4, 29.7]),
    ([21.7, 21.9], [20.8, 21.2]),
    ([1.0, 2.0, 3.0, 4.0, 10.0], [2.0, 2.1]),
    ([0.81, 0.83, 0.80], [0.82, 0.79, 0.84, 0.80, 0.81]),
])
def test_matches_scipy_ttest_ind_unequal_variances(a, b):
    ref = stats.ttest_ind(a, b, equal_var=False)
    got = welch_samples(a, b)
    assert got.t == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert got.df == pytest.approx(ref.df, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert got.significant == (ref.pvalue < 0.05)


def test_welch_satterthwaite_df_by_hand():
    # sd 1 and 2 over 3 and 5 seeds: v = 1/3 and 4/5; df = (v_a + v_b)^2 / (v_a^2/2 + v_b^2/4)
    r = welch(1.0, 1.0, 3, 0.0, 2.0, 5)
    va, vb = 1 / 3, 4 / 5
    assert r.df == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 4))
    assert r.se == pytest.approx(math.sqrt(va + vb))
    assert r.t_crit == pytest.approx(stats.t.ppf(0.975, r.df))
    # equal n and sd: df = 2(n - 1); one side without spread: df = n_other - 1
    assert welch(1, 0.5, 4, 0, 0.5, 4).df == pytest.approx(6.0)
    assert welch(1, 0.0, 3, 0, 0.7, 6).df == pytest.approx(5.0)


def test_readme_natural_vs_uniform_average_with_two_seeds():
    # README demo sweep, average PSNR: natural 21.79 ± 0.15 vs uniform 20.98 ± 0.19, 2 seeds each
    r = welch(21.79, 0.15, 2, 20.98, 0.19, 2)
    assert r.delta == pytest.approx(0.81)
    assert r.df == pytest.approx(1.898, abs=1e-3)  # not the ~infinite df of "2 standard errors"
    assert r.t == pytest.approx(4.73, abs=0.01) and r.t_crit == pytest.approx(4.53, abs=0.01)
    assert r.p_value == pytest.approx(0.046, abs=1e-3)
    assert r.significant  # only just: at level 0.96 it is not
    assert not welch(21.79, 0.15, 2, 20.98, 0.19, 2, level=0.96).significant
    assert r.t_crit > 2 * 2  # the old bar was 2 standard errors


def test_two_seed_bar_is_about_four_standard_errors():
    # equal spreads, 2 seeds each: df = 2, t_crit = 4.30; a 3-SE difference is not significant
    r = welch(3 * math.sqrt(2 * 0.5**2 / 2), 0.5, 2, 0.0, 0.5, 2)
    assert r.df == pytest.approx(2.0) and r.t_crit == pytest.approx(4.303, abs=1e-3)
    assert r.t == pytest.approx(3.0) and not r.significant


def test_not_testable_cases_say_why():
    one_seed = welch(25.0, 0.0, 1, 20.0, 0.3, 3)
    assert not one_seed.significant and "2 seeds" in one_seed.reason and math.isnan(one_seed.p_value)
    assert one_seed.delta == 5.0
    flat = welch(25.0, 0.0, 3, 20.0, 0.0, 3)
    assert not flat.significant and "zero spread" in flat.reason and flat.se == 0.0
    same = welch(20.0, 0.0, 3, 20.0, 0.0, 3)
    assert not same.significant and same.reason is not None
    ok = welch(25.0, 0.1, 3, 20.0, 0.1, 3)
    assert ok.significant and ok.reason is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(sd_a=-1.0), "sd_a"), (dict(n_b=2.5), "n_b"), (dict(level=1.0), "level"), (dict(mean_a=math.nan), "mean_a")])
def test_bad_inputs_fail_with_the_argument_name(kwargs, match):
    args = dict(mean_a=1.0, sd_a=0.1, n_a=3, mean_b=0.0, sd_b=0.1, n_b=3) | kwargs
    with pytest.raises(ValueError, match=match):
        welch(**args)


def test_level_moves_the_bar_and_the_interval():
    a, b = np.array([10.2, 10.9, 10.5]), np.array([10.0, 10.1, 9.8])
    loose, strict = welch_samples(a, b, level=0.8), welch_samples(a, b, level=0.99)
    assert loose.t_crit < strict.t_crit and loose.ci_high - loose.ci_low < strict.ci_high - strict.ci_low
    assert loose.p_value == strict.p_value
    assert loose.significant == (loose.p_value < 0.2) and strict.significant == (strict.p_value < 0.01)


def test_importing_stats_does_not_need_duckdb():
    import subprocess
    import sys

    code = "import sys; import anyir.leaderboard.stats; assert 'duckdb' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
