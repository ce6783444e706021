"""The hook through which a training run may change its task mixture while it trains.

Every ``balance_every`` steps the trainer all-reduces the mean training loss of each task over the
steps since the last call and calls ``controller.update(signals)`` on EVERY rank with the same
:class:`BalanceSignals`: the step, the weights in force (read from the stream, which owns them),
those losses, and, when the controller has a ``probe`` (:class:`anyir.train.probe.Probe`), the
model's all-reduced loss on it. Returning new weights (task -> weight) makes the trainer call
``stream.set_weights`` and append what the stream then holds to ``balance_trajectory`` (a record,
not a second copy the run reads back); returning None keeps the mix. Controllers must therefore be
deterministic functions of their inputs so all ranks agree.

The interface, the static default and what every factory gets (:class:`ControllerSetup`) live
here; the strategies are in their own modules and :mod:`anyir.train.controllers` maps the names of
``anyir.data.balance.STRATEGIES`` to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from anyir.data.shardset import ShardSet


@dataclass(frozen=True)
class BalanceSignals:
    """What a controller sees at one update (identical on every rank)."""

    step: int
    weights: dict[str, float]  # in force since the last update (the stream's)
    train_losses: dict[str, float]  # mean training loss per task since the last update (tasks seen only)
    probe_losses: dict[str, float] = field(default_factory=dict)  # mean loss on the probe (controllers with one)


@runtime_checkable
class BalanceController(Protocol):
    """Decides new per-task weights from what the run measured.

    Optional members the trainer uses when present: ``probe`` (a Probe to score at each update),
    ``state_dict()`` / ``load_state_dict(state)`` (saved with every checkpoint, for exact resume).
    """

    def update(self, signals: BalanceSignals) -> dict[str, float] | None:
        """Return new weights (summing to 1) to apply from the next step, or None to keep them."""
        ...


@dataclass(frozen=True)
class ControllerSetup:
    """What a controller factory may use: the shard set, the starting weights and the run's settings."""

    shards: ShardSet
    base_weights: dict[str, float]  # the weights the run starts from (the balance's static base)
    crop: int
    fft_weight: float
    seed: int


class StaticBalance:
    """The default: never changes the weights (the balance stays what ``--balance`` resolved to)."""

    def update(self, signals: BalanceSignals) -> dict[str, float] | None:
        """Keep the current weights."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


def floor_projection(weights: dict[str, float], lower: dict[str, float]) -> dict[str, float]:
    """The closest (in KL) distribution to ``weights`` with every task at least ``lower[t]``:
    tasks under their bound are raised to it, the others share what is left in proportion.
    Needs ``sum(lower) <= 1``; deterministic (tasks handled in sorted order)."""
    if sum(lower.values()) > 1 + 1e-12:
        raise ValueError(f"floors {lower} sum to more than 1")
    total = sum(weights.values())
    q = {t: weights[t] / total for t in sorted(weights)}
    fixed: set[str] = set()
    while True:
        free = [t for t in q if t not in fixed]
        mass = 1.0 - sum(lower[t] for t in fixed)
        norm = sum(q[t] for t in free)
        scaled = {t: (q[t] * mass / norm if norm > 0 else mass / len(free)) for t in free}
        under = [t for t in free if scaled[t] < lower[t]]
        if not under or len(under) == len(free):
            out = {t: lower[t] for t in fixed} | scaled
            if under:  # every free task under its floor: give each its floor plus an equal share
                extra = (1.0 - sum(lower.values())) / len(q)
                out = {t: lower[t] + extra for t in q}
            return dict(sorted(out.items()))
        fixed.update(under)
