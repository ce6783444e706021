"""The DataLoader over a :class:`~anyir.data.stream.MixtureStream` that tracks the consumed position.

Usage::

    loader = make_loader("shards/demo", weights="uniform", batch_size=8, crop=128, num_workers=2)
    for epoch in range(3):
        for batch in loader:          # the rest of the current epoch; then the next epoch starts
            ...
        state = loader.state_dict()   # plain dict: save it with the checkpoint
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from torch.utils.data import DataLoader

from anyir.data.reader import RetryPolicy
from anyir.data.shardset import ShardSet
from anyir.data.stream import MixtureStream, dist_env, join_slices, unpack_chunk


class MixtureLoader:
    """A DataLoader over a :class:`MixtureStream`; ``iter(loader)`` yields the rest of the current epoch.

    Each of the rank's ``stream.loader_workers`` workers makes a fixed slice of every batch
    (so every worker's own mixture stays within one sample of its share) and sends its slices of
    ``loader_workers`` steps as one item; the loader joins them into batches. ``prefetch_factor``
    items per worker are made ahead. Batches are pinned in the main process when ``pin_memory``.
    The next ``iter`` starts the next epoch. Workers are (re)started by one loop: at each epoch,
    and when ``set_weights`` is called during iteration (prefetched batches planned with the old
    weights are dropped, so the change is exact from the next step).
    """

    def __init__(self, stream: MixtureStream, pin_memory: bool = False, prefetch_factor: int = 2):
        self.stream = stream
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor

    def __len__(self) -> int:
        return self.stream.steps_per_epoch

    def __iter__(self) -> Iterator[dict]:
        stream = self.stream
        if stream.num_workers == 0:
            yield from stream
            return
        epoch, workers = stream.epoch, stream.loader_workers
        while stream.epoch == epoch:
            generation = stream._generation
            stream.plan()  # once, here: forked workers inherit it instead of each planning the epoch
            loader = DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=False,
                                prefetch_factor=self.prefetch_factor)
            for batch in _joined(loader, workers):
                if self.pin_memory:
                    batch["lq"], batch["gt"] = batch["lq"].pin_memory(), batch["gt"].pin_memory()
                stream.advance(batch)
                yield batch
                if stream._generation != generation or stream.epoch != epoch:
                    break
            else:
                return

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch on this rank."""
        return self.stream.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """See :meth:`MixtureStream.set_epoch`."""
        self.stream.set_epoch(epoch)

    def set_weights(self, weights: Mapping[str, float] | str) -> None:
        """See :meth:`MixtureStream.set_weights`."""
        self.stream.set_weights(weights)

    def samples_seen(self) -> dict[str, int]:
        """See :meth:`MixtureStream.samples_seen`."""
        return self.stream.samples_seen()

    def state_dict(self) -> dict:
        """See :meth:`MixtureStream.state_dict`."""
        return self.stream.state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        """See :meth:`MixtureStream.load_state_dict`."""
        self.stream.load_state_dict(state)


def _joined(loader: DataLoader, workers: int) -> Iterator[dict]:
    """Whole batches from the workers' items: each item holds one worker's slices of the same few
    steps, and the items arrive in worker order (DataLoader's round robin)."""
    items = iter(loader)
    for first in items:
        chunks = [unpack_chunk(first)] + [unpack_chunk(next(items)) for _ in range(workers - 1)]
        for parts in zip(*chunks, strict=True):
            yield join_slices(parts)


def make_loader(shards: ShardSet | str | Path | Sequence[ShardSet | str | Path],
                weights: Mapping[str, float] | str | None = None, *,
                batch_size: int, crop: int = 128, seed: int = 0, samples_per_epoch: int | None = None,
                rank: int | None = None, world_size: int | None = None, num_workers: int = 0,
                shuffle_buffer: int = 64, url_prefix: str | Sequence[str | None] | None = None,
                pin_memory: bool = False, retry: RetryPolicy | None = None,
                strict_shards: bool = False) -> MixtureLoader:
    """A :class:`MixtureLoader` over the train split; rank/world_size default to torchrun's env."""
    env_rank, env_world = dist_env()
    stream = MixtureStream(shards, weights, batch_size=batch_size, crop=crop, seed=seed,
                           samples_per_epoch=samples_per_epoch,
                           rank=env_rank if rank is None else rank,
                           world_size=env_world if world_size is None else world_size,
                           num_workers=num_workers, shuffle_buffer=shuffle_buffer, url_prefix=url_prefix,
                           retry=retry, strict_shards=strict_shards)
    return MixtureLoader(stream, pin_memory=pin_memory)
