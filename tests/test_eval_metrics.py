"""Metrics under the PromptIR protocol, crop-to-16, the pyiqa cross-check and optional metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anyir.eval.metrics import (
    build_metrics,
    center_crop_to_multiple,
    psnr,
    score_pair,
    ssim,
    ssim_gauss,
    to_unit_float,
)


def test_psnr_matches_hand_computation():
    reference = np.full((32, 32, 3), 0.5)
    output = reference + 0.1  # MSE = 0.01 -> PSNR = 10 * log10(1 / 0.01) = 20 dB
    assert psnr(output, reference) == pytest.approx(20.0, abs=1e-9)
    noisy = reference.copy()
    noisy[0, 0, 0] += 0.3  # one pixel of 3072 off by 0.3: MSE = 0.09 / 3072
    assert psnr(noisy, reference) == pytest.approx(10 * math.log10(3072 / 0.09), abs=1e-9)


def test_ssim_of_flat_images_is_the_luminance_term():
    # Zero variance everywhere: SSIM reduces to (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = (0.01 * 1)^2.
    mx, my, c1 = 0.3, 0.6, 1e-4
    expected = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    value = ssim(np.full((16, 16, 3), mx), np.full((16, 16, 3), my))
    assert value == pytest.approx(expected, abs=1e-9)
    assert ssim(np.full((16, 16, 3), my), np.full((16, 16, 3), my)) == pytest.approx(1.0)


def test_gaussian_ssim_differs_from_uniform_on_texture():
    rng = np.random.default_rng(0)
    reference = rng.random((48, 48, 3))
    output = np.clip(reference + rng.normal(0, 0.1, reference.shape), 0, 1)
    uniform, gauss = ssim(output, reference), ssim_gauss(output, reference)
    assert 0 < uniform < 1 and 0 < gauss < 1
    assert abs(uniform - gauss) > 1e-4


@pytest.mark.parametrize(("h", "w", "top", "left"), [(481, 321, 0, 0), (50, 37, 1, 2), (64, 48, 0, 0)])
def test_center_crop_to_multiple_of_16_like_promptir(h, w, top, left):
    img = np.arange(h * w, dtype=np.int64).reshape(h, w, 1).repeat(3, axis=2)
    cropped = center_crop_to_multiple(img)
    assert cropped.shape[:2] == (h - h % 16, w - w % 16)
    assert cropped[0, 0, 0] == img[top, left, 0]
    # PromptIR's crop_img: image[crop_h // 2 : h - crop_h + crop_h // 2, ...]
    crop_h, crop_w = h % 16, w % 16
    expected = img[crop_h // 2:h - crop_h + crop_h // 2, crop_w // 2:w - crop_w + crop_w // 2]
    np.testing.assert_array_equal(cropped, expected)


def test_crop_rejects_images_smaller_than_the_base():
    with pytest.raises(ValueError, match="smaller than the crop base 16"):
        center_crop_to_multiple(np.zeros((10, 40, 3)))


def test_output_is_clamped_before_scoring():
    reference = np.full((16, 16, 3), 1.0)
    over = np.full((16, 16, 3), 1.7)  # clamped to 1 -> identical to the reference
    assert to_unit_float(over).max() == 1.0
    scores = score_pair(over, reference, build_metrics())
    assert scores["psnr"] == math.inf or scores["psnr"] > 100
    assert scores["ssim"] == pytest.approx(1.0)


def test_pyiqa_psnr_equals_ours_on_8bit_values():
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    output = np.clip(reference.astype(int) + rng.integers(-20, 21, reference.shape), 0, 255).astype(np.uint8)
    metrics = build_metrics(["psnr_pyiqa"])
    scores = score_pair(output, reference, metrics)
    assert scores["psnr"] == pytest.approx(scores["psnr_pyiqa"], abs=1e-4)
    # The remaining gap is pyiqa's eps=1e-8 added to the MSE; with it, the two agree to 1e-6 dB.
    mse = 10 ** (-scores["psnr"] / 10)
    assert 10 * math.log10(1 / (mse + 1e-8)) == pytest.approx(scores["psnr_pyiqa"], abs=1e-6)


def test_unknown_metric_names_the_choices():
    with pytest.raises(ValueError, match="unknown metric 'ssim_gaus'.*ssim_gauss"):
        build_metrics(["ssim_gaus"])


def test_metric_without_weights_is_skipped_with_a_notice():
    notices: list[str] = []
    names = [m.name for m in build_metrics(["lpips", "ssim_gauss"], notify=notices.append)]
    assert names[:2] == ["psnr", "ssim"] and "ssim_gauss" in names
    if "lpips" not in names:  # offline without cached weights: skipped, one line, no crash
        assert len(notices) == 1 and "lpips" in notices[0] and "\n" not in notices[0]
