"""The trainer's view of the stream: build it for this rank, iterate batches across epochs, save/restore.

All knowledge of `anyir.data.stream` lives here, so the loop only sees ``batches(start_step)``,
``state_dict()``, ``load_state_dict()`` and ``set_weights()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from anyir.data.loader import MixtureLoader, make_loader
from anyir.data.shardset import ShardSet
from anyir.train.config import TrainConfig
from anyir.train.distributed import DistEnv
from anyir.train.errors import TrainSetupError


@dataclass
class TrainData:
    """This rank's loader (a MixtureLoader: the stream plus its consumed position)."""

    loader: MixtureLoader
    weights: dict[str, float]

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch on every rank (the stream makes it equal across ranks)."""
        return int(self.loader.steps_per_epoch)

    def batches(self) -> Iterator[dict[str, Any]]:
        """Endless batches from the stream's current position; each pass of the loader is the rest
        of one epoch, and the stream moves itself to the next epoch when one ends."""
        empty_passes = 0
        while True:
            yielded = False
            for batch in self.loader:
                yielded = True
                yield batch
            empty_passes = 0 if yielded else empty_passes + 1
            if empty_passes > 1:
                raise RuntimeError("the stream produced no batch for a whole epoch; check the shard set")

    def state_dict(self) -> dict[str, Any]:
        """The stream position (epoch, step in epoch, weight history) to resume exactly."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the stream where ``state`` left it."""
        self.loader.load_state_dict(state)

    def skipped_shards(self) -> dict[str, str]:
        """Shards this rank found unusable (URL -> reason): recorded in the run's summary."""
        return self.loader.stream.skipped_shard_reasons

    def replaced_samples(self) -> int:
        """Planned samples this rank replaced because their shard or image was unusable."""
        return self.loader.stream.replaced_samples

    def set_weights(self, weights: dict[str, float]) -> None:
        """New task weights from the next step on (call identically on all ranks)."""
        self.weights = dict(weights)
        self.loader.set_weights(self.weights)


def build_train_data(cfg: TrainConfig, env: DistEnv, weights: dict[str, float], shards: ShardSet) -> TrainData:
    """A MixtureLoader over the train split for this rank, with per-rank batch = global / world."""
    if cfg.batch_size % env.world_size:
        raise TrainSetupError(f"batch_size={cfg.batch_size} is not divisible by the world size {env.world_size}; "
                              f"pick a global batch that is a multiple of {env.world_size}")
    try:
        loader = make_loader(
            shards, weights, batch_size=cfg.batch_size // env.world_size, crop=cfg.crop, seed=cfg.seed,
            samples_per_epoch=cfg.samples_per_epoch, rank=env.rank, world_size=env.world_size,
            num_workers=cfg.num_workers, pin_memory=env.device.type == "cuda",
            strict_shards=cfg.strict_shards,
        )
    except ValueError as err:  # the stream names the argument and the fix (e.g. epoch < one batch)
        raise TrainSetupError(str(err)) from None
    return TrainData(loader=loader, weights=dict(weights))
