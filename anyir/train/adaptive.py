"""``--balance adaptive``: tilt the task mixture toward the tasks the model has restored least.

Scheme (DoReMi-inspired, without a reference model to train):

* DoReMi (Xie et al., 2023) reweights data domains by the *excess* loss of the model over a trained
  reference model, with exponentiated-gradient updates. Training a reference model would double the
  cost of every run. Restoration has a free reference: the identity, i.e. the degraded input itself.
* Per task i the signal is the **unrestored fraction** ``r_i = L_i(model) / L_i(identity)``: the
  training loss divided by the same loss of the untouched degraded crop (measured once, at start-up,
  on training crops of that task). ``r = 1`` means "no better than the input", ``r -> 0`` "solved".
  The division makes tasks with very different error scales comparable (sigma-50 noise vs faint rain),
  which raw losses are not: raw-loss reweighting would hand heavy noise, whose error is largely
  irreducible, all the weight.
* Every ``balance_every`` steps the trainer passes the all-reduced per-task training loss means
  (``BalanceSignals.train_losses``);
  ``r`` is smoothed with an EMA and the weights become
  ``w_i ∝ w0_i * exp(eta * (r_i - mean_j r_j))``, mixed with uniform: ``(1 - c) * w + c / k``.
  The tilt is recomputed from the base weights ``w0`` every time instead of accumulated as in DoReMi:
  an accumulating exponent drifts without bound toward any task with a persistent gap, a bounded tilt
  (at most ``exp(eta)`` between two tasks) cannot.
* Deterministic for a seed, and identical on every DDP rank: it is a pure function of the all-reduced
  statistics and of reference losses computed from the same seeded crops on every rank.

Measured weakness (docs/sweeps.md): a loss ratio is not a marginal utility. In the demo it moved weight
off low light, whose ratio looked "restored" early, and low light lost 3 dB. ``progress`` and ``dro``
(:mod:`anyir.train.progress`, :mod:`anyir.train.dro`) are the alternatives. The parameters and their
defaults are in the strategy registry, ``anyir.data.balance.STRATEGIES["adaptive"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from anyir.data.augment import PairedAugment, to_batch
from anyir.data.balance import STRATEGIES, BalanceError, BalanceSpec
from anyir.data.samples import iter_samples
from anyir.data.shardset import ShardSet
from anyir.train.balance_control import BalanceSignals, ControllerSetup
from anyir.train.losses import per_sample_loss

_DEFAULTS = STRATEGIES["adaptive"].params


@dataclass(frozen=True)
class AdaptiveSettings:
    """Knobs of the adaptive balance (defaults: the registry's, used by ``--balance adaptive``)."""

    eta: float = float(_DEFAULTS["eta"])  # tilt strength: at most exp(eta) between two tasks' weight ratios
    smoothing: float = float(_DEFAULTS["smoothing"])  # share of the uniform mixture kept, so no task starves
    ema: float = float(_DEFAULTS["ema"])  # weight of the previous signal in the EMA of r
    reference_samples: int = int(_DEFAULTS["reference_samples"])  # training samples per task for the identity's loss


def identity_losses(shards: ShardSet, tasks: list[str], crop: int, fft_weight: float, seed: int,
                    samples_per_task: int) -> dict[str, float]:
    """Mean training loss of the identity (output = degraded input) per task, on seeded training crops."""
    augment = PairedAugment(crop)
    losses: dict[str, float] = {}
    for task in tasks:
        values: list[float] = []
        for sample in iter_samples(shards, "train", tasks=[task], on_error=lambda err: None):
            sigma = (sample.meta or {}).get("online_noise_sigma")
            lq, gt = augment(sample.gt, sample.lq, sigma, seed, "adaptive-reference", sample.key)
            values.append(float(per_sample_loss(to_batch([lq]), to_batch([gt]), fft_weight)[0]))
            if len(values) >= samples_per_task:
                break
        if not values:
            raise BalanceError(f"adaptive balance: task {task!r} has no readable training samples in {shards.root}")
        losses[task] = max(sum(values) / len(values), 1e-8)
    return losses


class AdaptiveBalance:
    """A BalanceController (see ``balance_control``) implementing the scheme in the module docstring."""

    def __init__(self, base_weights: dict[str, float], reference: dict[str, float],
                 settings: AdaptiveSettings = AdaptiveSettings()):
        missing = sorted(set(base_weights) - set(reference))
        if missing:
            raise ValueError(f"reference losses missing for tasks {missing}")
        self.base = dict(sorted(base_weights.items()))
        self.reference = dict(reference)
        self.settings = settings
        self.signal: dict[str, float] = {}

    def update(self, signals: BalanceSignals) -> dict[str, float] | None:
        """Fold the new training losses into the EMA of r and return the tilted weights."""
        a = self.settings.ema
        for task, loss in signals.train_losses.items():
            if task not in self.base or not math.isfinite(loss):
                continue
            ratio = loss / self.reference[task]
            self.signal[task] = ratio if task not in self.signal else a * self.signal[task] + (1 - a) * ratio
        if not self.signal:
            return None
        mean_r = sum(self.signal.values()) / len(self.signal)
        tilted = {t: w * math.exp(self.settings.eta * (self.signal.get(t, mean_r) - mean_r))
                  for t, w in self.base.items()}
        total, k, c = sum(tilted.values()), len(tilted), self.settings.smoothing
        return {t: (1 - c) * v / total + c / k for t, v in tilted.items()}

    def state_dict(self) -> dict[str, Any]:
        """The EMA state (the rest is rebuilt from the config), for exact resume."""
        return {"signal": dict(self.signal)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the EMA state."""
        self.signal = {str(k): float(v) for k, v in (state.get("signal") or {}).items()}


def make_adaptive(spec: BalanceSpec, setup: ControllerSetup) -> AdaptiveBalance:
    """The controller for ``adaptive[(...)][:base]``: measure the identity reference, then build it."""
    settings = AdaptiveSettings(**spec.params)
    with torch.no_grad():
        reference = identity_losses(setup.shards, sorted(setup.base_weights), setup.crop, setup.fft_weight,
                                    setup.seed, settings.reference_samples)
    return AdaptiveBalance(setup.base_weights, reference, settings)
