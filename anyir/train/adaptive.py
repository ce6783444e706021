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
* Every ``balance_every`` steps the trainer passes the all-reduced per-task training loss means;
  ``r`` is smoothed with an EMA and the weights become
  ``w_i ∝ w0_i * exp(eta * (r_i - mean_j r_j))``, mixed with uniform: ``(1 - c) * w + c / k``.
  The tilt is recomputed from the base weights ``w0`` every time instead of accumulated as in DoReMi:
  an accumulating exponent drifts without bound toward any task with a persistent gap, a bounded tilt
  (at most ``exp(eta)`` between two tasks) cannot.
* Deterministic for a seed, and identical on every DDP rank: it is a pure function of the all-reduced
  statistics and of reference losses computed from the same seeded crops on every rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from anyir.data.augment import PairedAugment, to_batch
from anyir.data.balance import BalanceError
from anyir.data.samples import iter_samples
from anyir.data.shardset import ShardSet
from anyir.train.losses import per_sample_loss

ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class AdaptiveSettings:
    """Knobs of the adaptive balance (defaults used by ``--balance adaptive``)."""

    eta: float = 2.0  # tilt strength: at most exp(eta) between two tasks' weight ratios
    smoothing: float = 0.1  # share of the uniform mixture kept, so no task starves
    ema: float = 0.5  # weight of the previous signal in the EMA of r
    reference_samples: int = 32  # training samples per task used to measure the identity's loss


def split_adaptive(spec: str) -> tuple[bool, str]:
    """``"adaptive"`` -> (True, "uniform"); ``"adaptive:natural"`` -> (True, "natural"); else (False, spec)."""
    text = spec.strip()
    if text == ADAPTIVE:
        return True, "uniform"
    if text.startswith(ADAPTIVE + ":"):
        base = text.split(":", 1)[1].strip()
        if not base or base.startswith(ADAPTIVE):
            raise BalanceError(f"balance {spec!r}: write adaptive or adaptive:<base balance>, e.g. adaptive:natural")
        return True, base
    return False, text


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

    def update(self, step: int, per_task_losses: dict[str, float]) -> dict[str, float] | None:
        """Fold the new losses into the EMA of r and return the tilted weights."""
        a = self.settings.ema
        for task, loss in per_task_losses.items():
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


def make_adaptive(shards: ShardSet, base_weights: dict[str, float], crop: int, fft_weight: float,
                  seed: int, settings: AdaptiveSettings = AdaptiveSettings()) -> AdaptiveBalance:
    """Measure the identity reference on the shard set and build the controller."""
    with torch.no_grad():
        reference = identity_losses(shards, sorted(base_weights), crop, fft_weight, seed,
                                    settings.reference_samples)
    return AdaptiveBalance(base_weights, reference, settings)
