"""``--balance dro``: group DRO on the normalised probe loss, with a floor under every task.

Group distributionally robust optimisation (Sagawa et al., 2020; the online form of DoReMi's
domain weights) minimises the *worst* group's loss: the mixture ``q`` is the adversary's, updated
by exponentiated-gradient ascent on the per-group losses. Here the groups are the tasks and the
loss of each is normalised by what the identity (the degraded input itself) scores, so that
``r_i = L_i(probe) / L_i(identity)`` is comparable across tasks (1 = no better than the input).

Scheme, every ``balance_every`` steps (all numbers all-reduced, so every rank agrees):

* ``r_i`` on a fixed probe of training crops (:class:`anyir.train.probe.Probe`); the identity's loss is
  measured once on the same crops.
* ``q_i ∝ w_i * exp(eta * (r_i - sum_j w_j r_j))``: one ascent step from the weights in force ``w``
  (read from the stream, which owns them; this controller keeps no copy). Unlike ``adaptive`` the
  tilt *accumulates*: a task that stays the worst keeps gaining.
* The floor: ``q`` is projected (in KL: the tasks under their bound are raised to it, the others share
  the rest in proportion) onto ``q_i >= floor * w0_i``, so no task drops below ``floor`` times its base
  weight, and a task at the floor gets weight back from the very next update where it is the worst.

Deterministic and stateless apart from the stream's weights, so resuming needs nothing saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from anyir.data.balance import STRATEGIES, BalanceSpec
from anyir.train.balance_control import BalanceSignals, ControllerSetup, floor_projection
from anyir.train.probe import Probe

_DEFAULTS = STRATEGIES["dro"].params


@dataclass(frozen=True)
class DROSettings:
    """Knobs of ``dro`` (defaults: the registry's)."""

    eta: float = float(_DEFAULTS["eta"])  # ascent step on the normalised losses
    floor: float = float(_DEFAULTS["floor"])  # each task keeps at least floor x its base weight
    probe: int = int(_DEFAULTS["probe"])  # probe crops per task


class GroupDROBalance:
    """A BalanceController implementing the scheme in the module docstring."""

    def __init__(self, base_weights: dict[str, float], probe: Probe, reference: dict[str, float],
                 settings: DROSettings = DROSettings()):
        missing = sorted(set(base_weights) - set(reference))
        if missing:
            raise ValueError(f"identity reference losses missing for tasks {missing}")
        total = sum(base_weights.values())
        self.base = {t: w / total for t, w in sorted(base_weights.items())}
        self.probe, self.reference, self.settings = probe, dict(reference), settings

    def update(self, signals: BalanceSignals) -> dict[str, float] | None:
        """One exponentiated-gradient step from the weights in force, then the floor."""
        ratio = {t: loss / self.reference[t] for t, loss in signals.probe_losses.items()
                 if t in self.base and math.isfinite(loss)}
        if not ratio:
            return None
        current = {t: signals.weights.get(t, 0.0) for t in self.base}
        objective = sum(current[t] * ratio.get(t, 0.0) for t in self.base) / sum(current.values())
        eta = self.settings.eta
        stepped = {t: max(w, 1e-12) * math.exp(eta * (ratio.get(t, objective) - objective)) for t, w in current.items()}
        return floor_projection(stepped, {t: self.settings.floor * w for t, w in self.base.items()})

    def state_dict(self) -> dict[str, Any]:
        """Nothing beyond the stream's weights (saved with the stream)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


def make_dro(spec: BalanceSpec, setup: ControllerSetup) -> GroupDROBalance:
    """The controller for ``dro[(...)][:base]``: build the probe and its identity reference."""
    settings = DROSettings(**spec.params)
    probe = Probe.build(setup.shards, sorted(setup.base_weights), settings.probe, setup.crop, setup.fft_weight,
                        setup.seed)
    return GroupDROBalance(setup.base_weights, probe, probe.identity_losses(), settings)
