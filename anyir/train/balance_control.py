"""The hook through which a training run may change its task mixture while it trains.

Every ``balance_every`` steps the trainer all-reduces the mean training loss of each task over the
steps since the last call and calls ``controller.update(step, per_task_losses)`` on EVERY rank with the
same numbers. Returning new weights (task -> weight) makes the trainer call ``stream.set_weights``
and record them in ``train_summary.json``'s ``balance_trajectory``; returning None keeps the mix.
Controllers must therefore be deterministic functions of their inputs so all ranks agree.

Only the interface and the static default live here; adaptive strategies belong to the sweep layer.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BalanceController(Protocol):
    """Decides new per-task weights from recent per-task training losses."""

    def update(self, step: int, per_task_losses: dict[str, float]) -> dict[str, float] | None:
        """Return new weights (summing to 1) to apply from the next step, or None to keep them."""
        ...


class StaticBalance:
    """The default: never changes the weights (the balance stays what ``--balance`` resolved to)."""

    def update(self, step: int, per_task_losses: dict[str, float]) -> dict[str, float] | None:
        """Keep the current weights."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""
