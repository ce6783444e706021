"""``--balance progress``: give weight to the tasks whose loss is moving, per unit of weight they had.

Why: the ``adaptive`` balance reads a loss *ratio* (model / identity) as need. But a ratio is a
level, not a marginal utility: in the demo it moved weight off low light because its ratio looked
"restored" early, and low light then lost 3 dB (docs/sweeps.md). What a mixture should follow is
where the next samples buy the most, and whether a task is slipping because others took its share.
Learning-progress curricula (Graves et al. 2017; Matiisen et al., "Teacher-student curriculum
learning", 2017) use the *slope* of each task's loss for that; its absolute value counts
forgetting (loss going up) as much as learning.

Scheme, every ``balance_every`` steps (all numbers all-reduced, so every rank agrees):

* ``z_i = log L_i(probe)``: the loss of task i on a fixed probe of training crops
  (:class:`anyir.train.probe.Probe`, ``probe`` crops per task). In log units a change is relative, and
  PSNR is ``-10 log10 MSE``, so a step in ``z`` is worth the same dB on every task.
* ``d_i = z_i(previous) - z_i(now)``, smoothed: ``D_i = ema * D_i + (1 - ema) * d_i``.
* Progress per unit of weight: ``u_i = |D_i| / w_i``, with ``w_i`` the weight the task had during the
  window (the stream's weights now). Dividing by the weight is what keeps a task from starving: the
  less weight a task gets, the more each of its samples is worth to this signal, and a task that
  forgets while down-weighted shows a large ``|D|`` on a small ``w`` and wins weight back.
* ``w_i ∝ w0_i * exp(eta * (min(u_i / mean(u), 2) - 1))``, recomputed from the base weights ``w0``
  each time (a bounded tilt: at most ``exp(2 eta)`` between two tasks), then mixed with the base:
  ``floor * w0 + (1 - floor) * w``, so no task drops below ``floor`` times its base weight.

The first update only records ``z`` (a slope needs two points); the weights move from the second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from anyir.data.balance import STRATEGIES, BalanceSpec
from anyir.train.balance_control import BalanceSignals, ControllerSetup
from anyir.train.probe import Probe

_DEFAULTS = STRATEGIES["progress"].params


@dataclass(frozen=True)
class ProgressSettings:
    """Knobs of ``progress`` (defaults: the registry's)."""

    eta: float = float(_DEFAULTS["eta"])  # tilt strength
    floor: float = float(_DEFAULTS["floor"])  # share of the base weights always kept
    ema: float = float(_DEFAULTS["ema"])  # weight of the previous slope in its EMA
    probe: int = int(_DEFAULTS["probe"])  # probe crops per task


class LearningProgressBalance:
    """A BalanceController implementing the scheme in the module docstring."""

    def __init__(self, base_weights: dict[str, float], probe: Probe, settings: ProgressSettings = ProgressSettings()):
        missing = sorted(set(base_weights) - set(probe.tasks))
        if missing:
            raise ValueError(f"the probe has no crops of tasks {missing}")
        total = sum(base_weights.values())
        self.base = {t: w / total for t, w in sorted(base_weights.items())}
        self.probe = probe
        self.settings = settings
        self.last_log: dict[str, float] = {}  # z at the previous update
        self.slope: dict[str, float] = {}  # EMA of the decrease of z per update

    def update(self, signals: BalanceSignals) -> dict[str, float] | None:
        """Fold the probe losses into the slopes; return the tilted weights (None on the first call)."""
        z = {t: math.log(max(loss, 1e-12)) for t, loss in signals.probe_losses.items()
             if t in self.base and math.isfinite(loss)}
        a = self.settings.ema
        for task, value in z.items():
            if task in self.last_log:
                d = self.last_log[task] - value
                self.slope[task] = d if task not in self.slope else a * self.slope[task] + (1 - a) * d
        self.last_log.update(z)
        if not self.slope:
            return None
        return self.weights_for(signals.weights)

    def weights_for(self, current: dict[str, float]) -> dict[str, float]:
        """The tilt of the base weights by progress per unit of ``current`` weight (module docstring)."""
        per_weight = {t: abs(self.slope.get(t, 0.0)) / max(current.get(t, 0.0), 1e-6) for t in self.base}
        mean = sum(per_weight.values()) / len(per_weight)
        if not mean > 0:
            return dict(self.base)
        eta, floor = self.settings.eta, self.settings.floor
        tilted = {t: w * math.exp(eta * (min(per_weight[t] / mean, 2.0) - 1.0)) for t, w in self.base.items()}
        total = sum(tilted.values())
        return {t: floor * self.base[t] + (1 - floor) * v / total for t, v in tilted.items()}

    def state_dict(self) -> dict[str, Any]:
        """The slopes and the last log losses (the probe is rebuilt from the config), for exact resume."""
        return {"last_log": dict(self.last_log), "slope": dict(self.slope)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the slopes and the last log losses."""
        self.last_log = {str(k): float(v) for k, v in (state.get("last_log") or {}).items()}
        self.slope = {str(k): float(v) for k, v in (state.get("slope") or {}).items()}


def make_progress(spec: BalanceSpec, setup: ControllerSetup) -> LearningProgressBalance:
    """The controller for ``progress[(...)][:base]``: build the probe, then the controller."""
    settings = ProgressSettings(**spec.params)
    probe = Probe.build(setup.shards, sorted(setup.base_weights), settings.probe, setup.crop, setup.fft_weight,
                        setup.seed)
    return LearningProgressBalance(setup.base_weights, probe, settings)
