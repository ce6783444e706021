"""Synthetic degradations: seeded, parameterised, recorded, and doing what they claim."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from skimage import data

from anyir.degrade import add_haze, darken, defocus_blur, motion_blur
from anyir.degrade.blur import disk_kernel, line_kernel
from anyir.degrade.seeding import rng_from_key
from anyir.degrade.specs import (
    BlurSpec,
    ComposeSpec,
    DegradationSpec,
    HazeSpec,
    LowLightSpec,
    NoiseSpec,
    RainSpec,
)

IMG = np.ascontiguousarray(data.astronaut()[100:164, 200:264])
SPECS = [RainSpec(), HazeSpec(), BlurSpec(), LowLightSpec(), NoiseSpec(),
         ComposeSpec(steps=[LowLightSpec(), HazeSpec(), RainSpec()])]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_same_key_same_output_and_params(spec):
    a, pa = spec.apply(IMG, rng_from_key(0, "key"))
    b, pb = spec.apply(IMG, rng_from_key(0, "key"))
    c, pc = spec.apply(IMG, rng_from_key(0, "other"))
    assert a.dtype == np.uint8 and a.shape == IMG.shape
    np.testing.assert_array_equal(a, b)
    assert pa == pb and pa["name"] == spec.name
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, IMG)


def test_parameters_drawn_inside_ranges_and_fixed_values_kept():
    for i in range(20):
        _, p = RainSpec(density=(0.01, 0.02), length=12, angle=(-5, 5)).apply(IMG, rng_from_key(i))
        assert 0.01 <= p["density"] <= 0.02 and p["length"] == 12 and -5 <= p["angle"] <= 5


def test_rain_only_brightens():
    rainy, _ = RainSpec(density=0.02).apply(IMG, rng_from_key(1))
    assert (rainy.astype(int) >= IMG.astype(int) - 1).all() and (rainy.astype(int) > IMG.astype(int) + 20).mean() > 0.02


def test_haze_moves_towards_airlight_and_lowers_contrast():
    hazy = add_haze(IMG, rng_from_key(2), beta=1.5, airlight=0.9)
    assert abs(hazy.mean() - 0.9 * 255) < abs(IMG.mean() - 0.9 * 255)
    assert hazy.std() < IMG.std()
    assert np.array_equal(add_haze(IMG, rng_from_key(2), beta=0.0, airlight=0.9), IMG)  # t = 1: no haze


def test_blur_kernels_normalised_and_smooth():
    assert line_kernel(7, 30).sum() == pytest.approx(1) and disk_kernel(2.5).sum() == pytest.approx(1)
    assert line_kernel(5, 0)[2].tolist() == pytest.approx([0.2] * 5)  # horizontal line through the centre
    for blurred in (motion_blur(IMG, 9, 45), defocus_blur(IMG, 2.5)):
        assert np.abs(np.diff(blurred.astype(float), axis=1)).mean() < np.abs(np.diff(IMG.astype(float), axis=1)).mean()
        assert abs(blurred.mean() - IMG.mean()) < 2  # blur preserves brightness


def test_lowlight_darkens_monotonically():
    dark = darken(IMG, rng_from_key(3), gamma=2.0, scale=0.4, noise_sigma=0.0)
    expected = np.rint(0.4 * (IMG / 255.0) ** 2 * 255).astype(np.uint8)
    np.testing.assert_array_equal(dark, expected)


def test_compose_records_every_step():
    _, params = ComposeSpec(steps=[LowLightSpec(), NoiseSpec(sigmas=[10])]).apply(IMG, rng_from_key(4))
    assert [s["name"] for s in params["steps"]] == ["lowlight", "noise"] and params["steps"][1]["sigma"] == 10


def test_specs_reject_typos_and_reversed_ranges():
    adapter = TypeAdapter(DegradationSpec)
    assert isinstance(adapter.validate_python({"name": "haze", "beta": [1, 2]}), HazeSpec)
    with pytest.raises(ValidationError, match="densty"):
        adapter.validate_python({"name": "rain", "densty": 0.1})
    with pytest.raises(ValidationError, match="lo > hi"):
        adapter.validate_python({"name": "haze", "beta": [2, 1]})
    with pytest.raises(ValidationError):
        adapter.validate_python({"name": "snow"})


def test_truncating_noise_is_promptirs_test_rule_for_the_same_draw():
    from anyir.degrade.noise import add_gaussian_noise

    clean = IMG
    noisy = add_gaussian_noise(clean, 25, rng_from_key(0, "k"), rounding="truncate")
    noise = rng_from_key(0, "k").standard_normal(clean.shape, dtype=np.float32)
    np.testing.assert_array_equal(noisy, np.clip(clean + noise * 25, 0, 255).astype(np.uint8))
    rounded = add_gaussian_noise(clean, 25, rng_from_key(0, "k"))
    diff = rounded.astype(int) - noisy.astype(int)
    assert set(np.unique(diff)) <= {0, 1} and 0.3 < diff.mean() < 0.7  # truncation: about half a level lower
    with pytest.raises(ValueError, match="rounding"):
        add_gaussian_noise(clean, 25, rng_from_key(0, "k"), rounding="floor")

