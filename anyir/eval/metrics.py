"""Image-quality metrics under named protocols.

The default protocol, ``promptir``, is the one behind the published PromptIR / AdaIR / AirNet
numbers (and most all-in-one tables): clamp the output to [0, 1], center-crop output and
reference to a multiple of 16, PSNR with ``data_range=1`` and scikit-image SSIM with its
default uniform 7x7 window on RGB, all in float (no 8-bit rounding).

Extra metrics are opt-in by name (:data:`EXTRA_METRICS`). Those that come from pyiqa are built
lazily, and one whose weights cannot be loaded (pyiqa downloads them, which fails offline) is
skipped with a one-line notice instead of failing the evaluation.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PROTOCOL = "promptir"
CROP_BASE = 16

# name -> (protocol label stored with each value, one-line description for --help)
EXTRA_METRICS: dict[str, tuple[str, str]] = {
    "ssim_gauss": ("moceir", "scikit-image SSIM with gaussian_weights=True (MoCE-IR's test.py), RGB, float"),
    "ssim_pyiqa": ("pyiqa", "pyiqa 'ssimc': RGB SSIM, 11x11 gaussian window, inputs rounded to 8 bit"),
    "psnr_pyiqa": ("pyiqa", "pyiqa 'psnr' (RGB, inputs rounded to 8 bit); a cross-check of psnr"),
    "lpips": ("pyiqa", "pyiqa 'lpips' (AlexNet); needs its weights in the local torch hub cache"),
    "lpips_vgg": ("pyiqa", "pyiqa 'lpips-vgg' (MoCE-IR reports LPIPS-VGG); needs local weights"),
}
_PYIQA_NAMES = {"ssim_pyiqa": "ssimc", "psnr_pyiqa": "psnr", "lpips": "lpips", "lpips_vgg": "lpips-vgg"}

MetricFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(output, reference)`` on HxWx3 float arrays in [0, 1]."""

    name: str
    protocol: str
    fn: MetricFn
    higher_is_better: bool = True


def center_crop_to_multiple(img: np.ndarray, base: int = CROP_BASE) -> np.ndarray:
    """Center-crop an HxWxC image so both sides are multiples of ``base`` (PromptIR's ``crop_img``).

    PromptIR crops ``(h % base) // 2`` rows from the top and the rest from the bottom;
    we do the same so a 481x321 image is scored on the same 480x320 pixels.
    """
    h, w = img.shape[:2]
    new_h, new_w = h - h % base, w - w % base
    if new_h == 0 or new_w == 0:
        raise ValueError(f"image of size {h}x{w} is smaller than the crop base {base}; "
                         f"evaluation needs images of at least {base}x{base} pixels")
    top, left = (h - new_h) // 2, (w - new_w) // 2
    return img[top:top + new_h, left:left + new_w]


def to_unit_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> float64 in [0, 1]; float input is clamped to [0, 1] (the protocol's clamp)."""
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    return np.clip(img.astype(np.float64), 0.0, 1.0)


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB with data_range 1 (skimage), on float RGB in [0, 1]."""
    return float(peak_signal_noise_ratio(reference, output, data_range=1.0))


def ssim(output: np.ndarray, reference: np.ndarray) -> float:
    """SSIM with skimage's default uniform 7x7 window over RGB, data_range 1 (PromptIR protocol)."""
    return float(structural_similarity(reference, output, data_range=1.0, channel_axis=2))


def ssim_gauss(output: np.ndarray, reference: np.ndarray) -> float:
    """SSIM with ``gaussian_weights=True`` (sigma 1.5), as MoCE-IR's ``test.py`` computes it."""
    return float(structural_similarity(reference, output, data_range=1.0, channel_axis=2,
                                       gaussian_weights=True))


def default_metrics() -> list[Metric]:
    """The metrics every evaluation reports: PSNR and SSIM under the ``promptir`` protocol."""
    return [Metric("psnr", PROTOCOL, psnr), Metric("ssim", PROTOCOL, ssim)]


def _pyiqa_metric(name: str) -> Metric:
    """Build a pyiqa metric; raises whatever pyiqa raises when its weights are unavailable."""
    import pyiqa  # slow import (~3 s): only when an extra metric asks for it
    import torch

    # pyiqa/torch.hub print "Downloading ..." before failing offline: keep the console to our notice.
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        model = pyiqa.create_metric(_PYIQA_NAMES[name], device="cpu", as_loss=False)

    def fn(output: np.ndarray, reference: np.ndarray) -> float:
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]  # noqa: E731
        with torch.no_grad():
            return float(model(to_t(output), to_t(reference)).item())

    return Metric(name, EXTRA_METRICS[name][0], fn, higher_is_better=not model.lower_better)


def build_metrics(extra: Iterable[str] = (), notify: Callable[[str], None] = print) -> list[Metric]:
    """Default metrics plus the named extras; an extra whose weights cannot load is skipped.

    Unknown names raise ``ValueError`` naming the value and the valid choices.
    """
    metrics = default_metrics()
    for name in extra:
        if name not in EXTRA_METRICS:
            raise ValueError(f"extra_metrics: unknown metric {name!r}; choose from {sorted(EXTRA_METRICS)}")
        if name == "ssim_gauss":
            metrics.append(Metric(name, EXTRA_METRICS[name][0], ssim_gauss))
            continue
        try:
            metrics.append(_pyiqa_metric(name))
        except Exception as exc:  # offline weight download: URLError, HTTPError, OSError, ...
            notify(f"metric {name!r} skipped: its weights could not be loaded ({type(exc).__name__})")
    return metrics


def score_pair(output: np.ndarray, reference: np.ndarray, metrics: list[Metric]) -> dict[str, float]:
    """All metrics for one image pair (both HxWx3, already cropped, float or uint8)."""
    out, ref = to_unit_float(output), to_unit_float(reference)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from reference shape {ref.shape}")
    return {m.name: m.fn(out, ref) for m in metrics}
