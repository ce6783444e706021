"""Balance arithmetic: strategies, the published PromptIR/AdaIR mixtures, exact epoch counts."""

from __future__ import annotations

import pytest

from anyir.data.balance import BalanceError, epoch_counts, natural_total, parse_balance, resolve_weights
from anyir.data.recipe import load_recipe

# Published training counts (docs/recipes.md, the `promptir` balance): denoise = 5,144 clean images x 3 sigmas (one
# anyir sample per image and sigma), Rain100L 200, OTS 72,135, GoPro 2,103, LOL 485.
AIO3 = {"denoise": 5144 * 3, "derain": 200, "dehaze": 72135}
AIO5 = {**AIO3, "deblur": 2103, "lowlight": 485}


def test_promptir_preset_reproduces_the_published_totals():
    weights = resolve_weights("promptir", AIO3)
    assert natural_total("promptir", AIO3) == 142431
    assert epoch_counts(weights, 142431) == {"dehaze": 72135, "denoise": 46296, "derain": 24000}
    assert natural_total("promptir", AIO5) == 162646
    assert epoch_counts(resolve_weights("promptir", AIO5), 162646) == {
        "deblur": 10515, "dehaze": 72135, "denoise": 46296, "derain": 24000, "lowlight": 9700}


def test_natural_uses_repeats_and_matches_promptir_when_repeats_are_the_factors():
    repeats = {"denoise": 3, "derain": 120, "dehaze": 1}
    assert resolve_weights("natural", AIO3, repeats) == pytest.approx(resolve_weights("promptir", AIO3))
    plain = resolve_weights("natural", AIO3)
    assert plain["derain"] == pytest.approx(200 / sum(AIO3.values()))


def test_uniform_temperature_and_explicit():
    counts = {"a": 100, "b": 400}
    assert resolve_weights("uniform", counts) == {"a": 0.5, "b": 0.5}
    assert resolve_weights("temperature:1", counts) == pytest.approx({"a": 0.2, "b": 0.8})
    assert resolve_weights("temperature:2", counts) == pytest.approx({"a": 10 / 30, "b": 20 / 30})  # sqrt
    assert resolve_weights("temperature:1000", counts)["a"] == pytest.approx(0.5, abs=1e-3)
    assert resolve_weights("b=3, a=1", counts) == {"a": 0.25, "b": 0.75}
    assert sum(resolve_weights("temperature:3", AIO5).values()) == pytest.approx(1.0)


def test_rebalanced_recipe_follows_appendix_b():
    spec = load_recipe("aio3_rebalanced").default_balance
    weights = resolve_weights(spec, AIO3)
    counts = epoch_counts(weights, 128188)  # 90% of 142,431
    assert counts["dehaze"] == pytest.approx(72135 / 2, abs=5)
    assert counts["derain"] == pytest.approx(24000, abs=5)
    assert counts["denoise"] > 46296 and sum(counts.values()) <= 142431


def test_epoch_counts_exact_largest_remainder_with_name_tie_break():
    assert epoch_counts({"b": 1, "a": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert epoch_counts({"x": 0.5, "y": 0.5}, 1) == {"x": 1, "y": 0}
    counts = epoch_counts({"a": 0.123, "b": 0.456, "c": 0.421}, 997)
    assert sum(counts.values()) == 997 and counts == {"a": 122, "b": 455, "c": 420}  # remainders .631 < .632 < .737
    assert epoch_counts({"a": 1.0}, 0) == {"a": 0}


@pytest.mark.parametrize("spec,message", [
    ("bogus", "unknown strategy"), ("temperature:0", "positive"), ("temperature:x", "positive"),
    ("a=1,a=2", "unique"), ("a=-1", ">= 0"), ("a=0,b=0", "sum to 0"), ("a=x", "not a number")])
def test_bad_specs_name_the_value(spec, message):
    with pytest.raises(BalanceError, match=message):
        parse_balance(spec)


def test_explicit_weights_must_cover_exactly_the_tasks_and_promptir_knows_its_tasks():
    with pytest.raises(BalanceError, match="missing \\['b'\\], unknown \\['c'\\]"):
        resolve_weights("a=1,c=1", {"a": 1, "b": 1})
    with pytest.raises(BalanceError, match="no repetition factor for tasks \\['low_haze'\\]"):
        resolve_weights("promptir", {"denoise": 3, "low_haze": 5})
    assert str(parse_balance("b=0.5,a=0.25")) == "a=0.25,b=0.5" and str(parse_balance("temperature:2.0")) == "temperature:2"


# ---------------------------------------------------------------- the one grammar and its registry


def test_one_grammar_for_static_and_adaptive_specs():
    from anyir.data.balance import STRATEGIES

    for text, canonical, adaptive, base in [
        ("natural", "natural", False, "natural"),
        ("adaptive", "adaptive", True, "uniform"),
        ("adaptive:natural", "adaptive:natural", True, "natural"),
        ("dro(floor=0.3, eta=2):temperature:2.0", "dro(eta=2,floor=0.3):temperature:2", True, "temperature:2"),
        ("progress(probe=8)", "progress", True, "uniform"),  # defaults are not spelled out
        ("dro:b=2,a=1", "dro:a=1,b=2", True, "a=1,b=2"),
    ]:
        spec = parse_balance(text)
        assert (str(spec), spec.adaptive, str(spec.start)) == (canonical, adaptive, base), text
        assert parse_balance(str(spec)) == spec  # the canonical spelling parses back to the same spec
    dro = parse_balance("dro(floor=0.3)")
    assert dro.params == {**STRATEGIES["dro"].params, "floor": 0.3}
    assert isinstance(parse_balance("progress(probe=4)").params["probe"], int)
    # an adaptive spec resolves to the weights it starts from
    assert resolve_weights("adaptive:natural", AIO3) == resolve_weights("natural", AIO3)
    assert natural_total("progress:promptir", AIO3) == 142431


@pytest.mark.parametrize("spec,message", [
    ("adaptive:adaptive", "cannot be the base"), ("dro:progress", "cannot be the base"),
    ("dro(x=1)", "takes key=value parameters"), ("dro(floor=2)", "floor must be a number in \\[0, 1\\]"),
    ("progress(probe=2.5)", "probe must be a whole number"), ("dro(eta=abc)", "not a number"),
    ("dro:bogus", "unknown strategy"), ("adaptive(eta)", "takes key=value")])
def test_bad_adaptive_specs_name_the_value(spec, message):
    with pytest.raises(BalanceError, match=message):
        parse_balance(spec)


def test_every_adaptive_strategy_has_a_controller_and_no_other():
    from anyir.data.balance import STRATEGIES
    from anyir.train.controllers import CONTROLLERS

    assert set(CONTROLLERS) == {n for n, s in STRATEGIES.items() if s.adaptive}
    for name, strategy in STRATEGIES.items():
        assert set(strategy.bounds) <= set(strategy.params), name
        assert all(lo <= strategy.params[k] <= hi for k, (lo, hi) in strategy.bounds.items()), name


def test_split_specs_keeps_parameters_and_explicit_bases_whole():
    from anyir.data.balance import split_specs

    assert split_specs("natural,uniform,derain=2,dehaze=1,temperature:2,adaptive") == [
        "natural", "uniform", "derain=2,dehaze=1", "temperature:2", "adaptive"]
    assert split_specs("dro(floor=0.3,eta=2),natural,progress:a=1,b=2;a=3,b=1") == [
        "dro(floor=0.3,eta=2)", "natural", "progress:a=1,b=2", "a=3,b=1"]
    assert split_specs(" ; ") == []


def test_with_fixed_base_turns_repeats_into_explicit_weights():
    from anyir.data.balance import with_fixed_base

    counts = {"a": 100, "b": 100}
    fixed = with_fixed_base("natural", counts, {"a": 3.0})
    assert fixed.strategy == "explicit" and resolve_weights(fixed, counts) == pytest.approx({"a": 0.75, "b": 0.25})
    adaptive = with_fixed_base("dro(floor=0.2):natural", counts, {"b": 4.0})
    assert str(adaptive) == "dro(floor=0.2):a=0.2,b=0.8"
    assert with_fixed_base("uniform", counts, {"a": 3.0}) == parse_balance("uniform")  # reads no repeats
