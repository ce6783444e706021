"""Exact per-task mixture plans: pure arithmetic over manifest counts, no I/O.

An epoch is ``steps`` global batches of ``world_size x batch_size`` slots. :func:`plan_segment`
fills the slots with task ids so that each task gets exactly ``epoch_counts(weights, slots)``
of them, and so that the mixture is right at every step, not only at the end: after any number
of steps each task's count is its share rounded down or up, in total, on every rank and in every
loader worker's part; see :mod:`anyir.data.low_discrepancy`. The order inside a worker's part of
a batch is a seeded shuffle. Every rank computes the same plan from the seed alone, so nothing is
communicated.

Who reads what: each rank's batch is made by its ``num_workers`` loader workers together, worker
``v`` making a fixed *slice* of every batch (``worker_sizes``: the batch split as evenly as it
goes; a rank never runs more workers than its batch has samples). Each such *consumer* (rank,
worker) needs some number of samples of each task per epoch; the consumers take contiguous,
disjoint ranges of that task's epoch sequence (:class:`TaskOrder`), so a consumer reads a run
of consecutive samples from one or two shards: sequential reads, which also work for remote
tar files, and no sample is read by two consumers unless the task is repeated.

Weights may change between steps (:func:`plan_epoch` takes the history of changes): each change
starts a *segment* whose remaining slots get exact counts for the new weights, with shares
counted from the segment's first step. Consumers keep their unread positions and get new ranges
only for what they lack (:func:`allocate_ranges`), so the task sequences continue without
re-reading or skipping samples.

Across epochs each epoch is planned on its own (its totals are ``epoch_counts``), so a run's
error after ``e`` whole epochs is the sum of the epochs' rounding errors (each under 1 per task).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from anyir.data.balance import epoch_counts
from anyir.data.low_discrepancy import plan_counts, worker_sizes
from anyir.degrade.seeding import rng_from_key


@dataclass(frozen=True)
class Segment:
    """Steps ``[start, end)`` of an epoch planned with one set of weights.

    ``planned[i, r, b]`` is the task index (into the plan's sorted task list) of sample ``b`` of
    rank ``r`` in global step ``start + i``, planned to the end of the epoch; ``slots`` is the part
    actually used before the next weight change. Loader worker ``v`` makes the samples
    ``slice_of(v, num_workers)`` of every batch.
    """

    start: int
    end: int
    weights: tuple[tuple[str, float], ...]
    planned: np.ndarray

    @property
    def slots(self) -> np.ndarray:
        """Task indices of the steps ``[start, end)``, shape [steps, world_size, batch]."""
        return self.planned[: self.end - self.start]

    def consumer_slots(self, rank: int, worker: int, num_workers: int, planned: bool = False) -> np.ndarray:
        """Slots of one consumer, shape [steps, its slice of the batch], in step order."""
        return (self.planned if planned else self.slots)[:, rank, self.slice_of(worker, num_workers)]

    def slice_of(self, worker: int, num_workers: int) -> slice:
        """The positions of a batch that loader worker ``worker`` of ``num_workers`` makes."""
        sizes = worker_sizes(self.planned.shape[2], num_workers)
        first = int(sizes[:worker].sum())
        return slice(first, first + int(sizes[worker]))


def plan_segment(tasks: list[str], weights: dict[str, float], start: int, end: int,
                 world_size: int, batch_size: int, seed: int, epoch: int, num_workers: int = 1) -> Segment:
    """Task ids for the slots of steps ``[start, end)``: exact counts, right at every step.

    ``num_workers`` (loader workers per rank, 0 or 1 for none) splits every batch into that many
    slices, one per worker, and keeps each worker's own mixture within one sample of its share
    too; it does not change the totals. At most ``batch_size`` workers.
    """
    if not 1 <= max(1, num_workers) <= batch_size:
        raise ValueError(f"num_workers={num_workers}: each loader worker makes a slice of every batch, "
                         f"so a batch of {batch_size} takes at most {batch_size} workers")
    frozen = tuple(sorted((t, float(w)) for t, w in weights.items()))
    planned = _planned(tuple(tasks), frozen, start, end, world_size, batch_size, seed, epoch, max(1, num_workers))
    return Segment(start, end, frozen, planned)


@lru_cache(maxsize=32)
def _planned(tasks: tuple[str, ...], weights: tuple[tuple[str, float], ...], start: int, end: int,
             world_size: int, batch_size: int, seed: int, epoch: int, num_workers: int) -> np.ndarray:
    # cached: plan_epoch plans every segment again when a weight change arrives
    given = dict(weights)
    raw = {t: given.get(t, 0.0) for t in tasks}
    steps, n_tasks = end - start, len(tasks)
    final = epoch_counts(raw, steps * world_size * batch_size)
    w = np.array([raw[t] for t in tasks], dtype=np.float64)
    rng = rng_from_key("stream-schedule", seed, epoch, start)
    counts = plan_counts(w / w.sum(), np.array([final[t] for t in tasks]), steps, world_size, batch_size,
                         num_workers=num_workers, tiebreak=rng.random((steps, world_size, num_workers, n_tasks)))
    ids = np.repeat(np.tile(np.arange(n_tasks, dtype=np.int16), steps * world_size * num_workers), counts.ravel())
    ids = ids.reshape(steps, world_size, batch_size)  # worker slices one after the other
    worker_of = np.repeat(np.arange(num_workers), worker_sizes(batch_size, num_workers))
    # a seeded order inside each worker's slice (the slices stay where they are)
    shuffle = np.argsort(worker_of + rng.random(ids.shape), axis=2, kind="stable")
    planned = np.take_along_axis(ids, shuffle, axis=2)
    planned.flags.writeable = False
    return planned


def plan_epoch(tasks: list[str], history: list[tuple[int, dict[str, float]]], steps: int,
               world_size: int, batch_size: int, seed: int, epoch: int, num_workers: int = 1) -> list[Segment]:
    """One segment per weight change in ``history`` ([(first step, weights)], first step 0).

    Each segment is planned to the end of the epoch (exact counts for the rest of the epoch) and
    cut where the next change starts, so the steps already taken never change their plan.
    """
    assert history and history[0][0] == 0, "weight history must start at step 0"
    bounds = [s for s, _ in history[1:]] + [steps]
    segments = []
    for (start, weights), end in zip(history, bounds, strict=True):
        if end > start:
            full = plan_segment(tasks, weights, start, steps, world_size, batch_size, seed, epoch, num_workers)
            segments.append(Segment(start, end, full.weights, full.planned))
    return segments


def allocate_ranges(segments: list[Segment], n_tasks: int, world_size: int,
                    num_workers: int) -> dict[tuple[int, int, int], tuple[int, int]]:
    """Ranges ``[first, last)`` of each task's epoch sequence handed to each consumer per segment.

    Keys are (segment index, consumer = rank * num_workers + worker, task index). A consumer
    reads its ranges one after the other. A segment hands out only what the consumer's planned
    need (to the end of the epoch) exceeds its unread positions, so a weight change neither
    re-reads nor skips positions; ranges of one segment are consecutive in consumer order.
    """
    used = np.zeros(n_tasks, dtype=np.int64)
    unread = np.zeros((world_size * num_workers, n_tasks), dtype=np.int64)
    ranges: dict[tuple[int, int, int], tuple[int, int]] = {}
    for j, seg in enumerate(segments):
        for rank in range(world_size):
            for worker in range(num_workers):
                c = rank * num_workers + worker
                planned = np.bincount(seg.consumer_slots(rank, worker, num_workers, planned=True).ravel(),
                                      minlength=n_tasks)
                extra = np.maximum(planned - unread[c], 0)
                for t in np.flatnonzero(extra):
                    ranges[j, c, int(t)] = (int(used[t]), int(used[t] + extra[t]))
                used += extra
                taken = np.bincount(seg.consumer_slots(rank, worker, num_workers).ravel(), minlength=n_tasks)
                unread[c] += extra - taken
    return ranges


class TaskOrder:
    """Maps position ``q`` of one task's epoch sequence to (shard index, sample offset).

    The sequence is a series of passes over the task's samples; each pass visits the shards in a
    seeded order, samples in stored order, and starts at a seeded random offset (wrapping round),
    so a subsampled task sees a different, uniformly placed part of its data every epoch, and a
    repeated task is cycled with a fresh shard order per pass. Order within a consumer's range is
    mixed further by the stream's shuffle buffer.
    """

    def __init__(self, shard_sizes: list[int], seed: int, epoch: int, task: str):
        self._shards = np.array([i for i, n in enumerate(shard_sizes) if n > 0], dtype=np.int64)
        self._sizes = np.array([n for n in shard_sizes if n > 0], dtype=np.int64)
        self.total = int(self._sizes.sum())
        if self.total <= 0:
            raise ValueError(f"task {task!r} has no samples in its shards; it cannot be streamed")
        self._key = (seed, epoch, task)
        self._passes: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}

    def _pass(self, p: int) -> tuple[np.ndarray, np.ndarray, int]:
        if p not in self._passes:
            rng = rng_from_key("stream-pass", *self._key, p)
            perm = rng.permutation(len(self._sizes))
            starts = np.concatenate([[0], np.cumsum(self._sizes[perm])[:-1]])
            self._passes[p] = (perm, starts, int(rng.integers(self.total)))
        return self._passes[p]

    def locate(self, q: int) -> tuple[int, int]:
        """(shard index in the task's shard list, sample offset inside that shard) of position q."""
        p, r = divmod(q, self.total)
        perm, starts, rotation = self._pass(p)
        r = (r + rotation) % self.total
        j = int(np.searchsorted(starts, r, side="right")) - 1
        return int(self._shards[perm[j]]), int(r - starts[j])
