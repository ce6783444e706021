"""Stream a shard set's train split as an exact per-task mixture, across ranks and workers.

Usage (through :func:`anyir.data.loader.make_loader`, which adds DataLoader workers)::

    stream = MixtureStream("shards/demo", "uniform", batch_size=8, crop=128)
    for batch in stream:              # the rest of the current epoch
        batch["lq"], batch["gt"]      # float32 Bx3xCxC in [0, 1]; batch["task"], batch["key"]: lists
    state = stream.state_dict()       # plain dict: save it with the checkpoint

Guarantees (see :mod:`anyir.data.mixture` for the plan):

* Exact mixtures. An epoch is ``steps_per_epoch`` global batches (``samples_per_epoch`` rounded
  down to a multiple of ``batch_size x world_size``: drop-last at the global batch level). Each
  task fills exactly ``epoch_counts(weights, steps_per_epoch x batch_size x world_size)`` slots,
  summed over ranks and workers. Every rank yields the same number of batches, so DDP never
  waits on a rank that ran out of shards.
* No sample twice in an epoch unless the task is repeated (its count exceeds its samples); a
  large task is subsampled without duplicates, at a random place that moves every epoch.
* Deterministic: the same (seed, epoch, weights, batch_size, world_size, num_workers) give the
  same batches, crops, flips and noise. ``state_dict()`` / ``load_state_dict()`` resume mid-epoch
  batch for batch: each worker replays the epoch so far on raw samples (no decoding) to rebuild
  its shuffle buffers. ``set_weights()`` takes effect from the next global step.
* Trusted input. Every tar is checked against the manifest by :mod:`anyir.data.reader` before
  any of its samples is used (size, sha256, sample count, keys, each sample's task and split),
  so a swapped or stale shard is never trained on. A shard that fails is skipped as a whole with
  a :class:`ShardSkippedWarning`, recorded in ``skipped_shards`` (with the reason), and its
  samples are replaced by other samples of the same task (counted in ``replaced_samples``), so
  counts stay exact; with ``strict_shards=True`` the stream raises instead.
* Counts are in source samples. When the train images were cut into patches at build time
  (recipe ``encoding.patch``), the plan, the weights and the default epoch count *items* (one
  photo pair, one noise sigma of one clean image) and each visit of an item reads one of its
  patches, drawn from (seed, epoch, task, position): an epoch still visits each source sample
  once on average (:mod:`anyir.data.patches`). A crop larger than the patches is refused.
* Cheap samples: with ``npy`` members a sample is a view of the mapped tar, cropped and flipped
  with numpy (:mod:`anyir.data.augment`): its cost depends on the crop, not on the photo.
* Safe decoding: only ``json`` and ``gt``/``lq`` image members are ever read; any other member
  (``.pyd``, ``.pickle``, ``.pth``) is ignored. No webdataset decoder is used.

Remote shards: see :mod:`anyir.data.shardset` (``url_prefix``); remote fetches retry with
bounded backoff (:class:`anyir.data.reader.RetryPolicy`).

Loader workers: worker ``v`` of a rank makes a fixed slice of every batch (the batch split as
evenly as it goes; at most ``batch_size`` workers, ``loader_workers``) and the loader joins the
slices, so every worker's own mixture is also within one sample of its share after every step.

Trade-off chosen for sequential reads: each consumer (rank x loader worker) reads a contiguous
run of a task's samples (shards in a seeded order, samples in stored order, from a seeded
offset), then mixes them in a per-consumer shuffle buffer of ``shuffle_buffer`` raw samples per
task. Each shard is read about once per epoch, but mixing is local: samples stored next to each
other (e.g. crops of one photo) tend to appear within the same few hundred batches. A resume or
a ``set_weights`` call restarts the loader workers, which replay this epoch's raw reads so far:
cheap on local disk, but with remote shards prefer infrequent weight changes.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from anyir.data.augment import PairedAugment, to_batch
from anyir.data.balance import resolve_weights
from anyir.data.images import ImageReadError
from anyir.data.mixture import Segment, TaskOrder, allocate_ranges, plan_epoch
from anyir.data.patches import choose_patch, item_ranges, max_full_coverage_crop
from anyir.data.reader import RawSample, RetryPolicy, Shard, ShardCorrupt, ShardError, ShardReader
from anyir.data.samples import decode_pair
from anyir.data.shardset import ShardRef, ShardSet, TaskShards, as_shard_set, merge_tasks
from anyir.degrade.seeding import rng_from_key

_LAYOUT = "worker-slices"  # how batches are split over loader workers; in the saved state, so old states fail loudly


class ShardSkippedWarning(UserWarning):
    """A shard (or a sample in it) could not be used and was skipped."""


class TaskQueue:
    """One consumer's reading of one task: ranges of positions, read in order, mixed in a buffer.

    ``extend`` appends a range handed out by the plan; ``pop`` returns a random one of the next
    ``buffer_size`` readable samples (a seeded shuffle buffer over raw samples). When every planned
    position is used up or unreadable, ``spare`` reads on past the last range so the batch can
    still be filled with this task.
    """

    def __init__(self, task: str, order: TaskOrder, read: Callable[[int], RawSample | None],
                 buffer_size: int, rng: np.random.Generator):
        self.task, self._order, self._read = task, order, read
        self._size, self._rng = buffer_size, rng
        self._pending: deque[range] = deque()
        self._buf: list[tuple[int, RawSample]] = []
        self._spare_q = 0
        self.replaced = 0  # planned positions that were unreadable and replaced by spares

    def extend(self, first: int, last: int) -> None:
        """Queue positions ``[first, last)``."""
        self._pending.append(range(first, last))
        self._spare_q = max(self._spare_q, last)

    def pop(self) -> tuple[int, RawSample]:
        """(position, raw sample): the next planned sample, or a spare if none is left."""
        while len(self._buf) < self._size and self._pending:
            positions = self._pending[0]
            q = positions[0]
            self._pending[0] = positions[1:]
            if not self._pending[0]:
                self._pending.popleft()
            raw = self._read(q)
            if raw is None:
                self.replaced += 1
            else:
                self._buf.append((q, raw))
        if not self._buf:
            return self.spare()
        i = int(self._rng.integers(len(self._buf)))
        self._buf[i], self._buf[-1] = self._buf[-1], self._buf[i]
        return self._buf.pop()

    def spare(self) -> tuple[int, RawSample]:
        """The next readable sample past the planned ranges (replaces unreadable ones)."""
        for _ in range(self._order.total):
            q, self._spare_q = self._spare_q, self._spare_q + 1
            if (raw := self._read(q)) is not None:
                return q, raw
        raise RuntimeError(f"task {self.task!r}: no readable sample left in its shards; "
                           "check them with `anyir shards verify` and rebuild")


def join_slices(parts: Sequence[dict]) -> dict:
    """One batch from its loader workers' slices of one step, in worker order."""
    if len(parts) == 1:
        return parts[0]
    steps = {part["_step"] for part in parts}
    assert len(steps) == 1, f"slices of different steps joined: {sorted(steps)}"
    # numpy, not torch.cat: torch's thread pool makes tiny ops slow on busy cores (see to_batch)
    batch: dict = {"lq": torch.from_numpy(np.concatenate([p["lq"].numpy() for p in parts])),
                   "gt": torch.from_numpy(np.concatenate([p["gt"].numpy() for p in parts])),
                   "task": [t for p in parts for t in p["task"]], "key": [k for p in parts for k in p["key"]],
                   "_step": parts[0]["_step"], "_replaced": sum(p["_replaced"] for p in parts),
                   "_skipped": {}, "_verified": {}}
    for part in parts:
        batch["_skipped"].update(part["_skipped"])
        batch["_verified"].update(part["_verified"])
    return batch


def pack_chunk(parts: Sequence[dict]) -> dict:
    """A loader worker's slices of consecutive steps as one DataLoader item.

    Every item crosses the process boundary with a fixed cost per tensor; a worker sends its
    slices of ``loader_workers`` steps at once, so a rank moves one item per step, as many as
    with a whole batch per worker. :func:`unpack_chunk` undoes it.
    """
    return {"lq": torch.from_numpy(np.concatenate([p["lq"].numpy() for p in parts])),
            "gt": torch.from_numpy(np.concatenate([p["gt"].numpy() for p in parts])),
            "rest": [{k: v for k, v in p.items() if k not in ("lq", "gt")} for p in parts]}


def unpack_chunk(chunk: dict) -> list[dict]:
    """The per-step slices of a :func:`pack_chunk` item."""
    parts, first = [], 0
    for rest in chunk["rest"]:
        last = first + len(rest["task"])
        parts.append({"lq": chunk["lq"][first:last], "gt": chunk["gt"][first:last], **rest})
        first = last
    return parts


def dist_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _check_int(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r}: must be an integer >= {minimum}")


def check_crop_fits_patches(shard_set: ShardSet, crop: int) -> None:
    """A crop larger than the set's train patches fails here (padding every sample with reflections
    would train on made-up borders); one that leaves crop positions unreachable warns."""
    patch = shard_set.manifest.encoding.get("patch")
    if not isinstance(patch, Mapping):
        return
    size, stride = int(patch["size"]), int(patch["stride"])
    if crop > size:
        raise ValueError(f"crop={crop} is larger than the {size} px train patches of {shard_set.root}; "
                         f"use crop <= {size} or rebuild the shards with a larger encoding.patch.size")
    if crop > max_full_coverage_crop(size, stride):
        warnings.warn(f"crop={crop} with {size} px patches at stride {stride} ({shard_set.root}): crops that "
                      f"straddle two patches cannot be drawn; crops up to {max_full_coverage_crop(size, stride)} px "
                      "reach every position", UserWarning, stacklevel=3)


def _open_sets(shards: ShardSet | str | Path | Sequence[ShardSet | str | Path],
               url_prefix: str | Sequence[str | None] | None) -> list[ShardSet]:
    items = [shards] if isinstance(shards, (ShardSet, str, Path)) else list(shards)
    prefixes = list(url_prefix) if isinstance(url_prefix, (list, tuple)) else [url_prefix] * len(items)
    if not items or len(prefixes) != len(items):
        raise ValueError(f"shards={shards!r}, url_prefix={url_prefix!r}: give one or more shard sets and "
                         "either one url_prefix or one per set")
    return [as_shard_set(s, p) for s, p in zip(items, prefixes, strict=True)]


class MixtureStream(IterableDataset):
    """Exact per-task mixture over the train split of one or more shard sets (see module docs).

    Args:
        shards: a shard set (folder holding ``manifest.json``, or a :class:`ShardSet`), or a list
            of them (tasks merged).
        weights: task -> weight (normalised; missing tasks get 0), a balance spec string
            (``uniform``, ``temperature:2``, ...), or None for the manifest's default balance.
        batch_size: samples per batch on this rank.
        crop: square training crop in pixels.
        seed: the stream's seed (order, crops, flips, online noise).
        samples_per_epoch: samples per epoch over all ranks; default: available samples x the
            manifest's repeat factors. Rounded down to a multiple of ``batch_size x world_size``.
        rank, world_size: this process in the distributed job (see :func:`dist_env`).
        num_workers: DataLoader workers that will iterate this stream (0: the main process); each
            makes a slice of every batch, so at most ``batch_size`` of them are used.
        shuffle_buffer: raw samples per task held by each worker for mixing.
        url_prefix: where the tar files live when not next to the manifest (one per shard set, or one).
        split: the split to stream.
        retry: backoff for remote fetches.
        strict_shards: raise on a shard that fails its checks instead of skipping it.
    """

    def __init__(self, shards: ShardSet | str | Path | Sequence[ShardSet | str | Path],
                 weights: Mapping[str, float] | str | None = None, *,
                 batch_size: int, crop: int = 128, seed: int = 0, samples_per_epoch: int | None = None,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, shuffle_buffer: int = 64,
                 url_prefix: str | Sequence[str | None] | None = None, split: str = "train",
                 retry: RetryPolicy | None = None, strict_shards: bool = False):
        _check_int("batch_size", batch_size, 1)
        _check_int("world_size", world_size, 1)
        _check_int("num_workers", num_workers, 0)
        _check_int("shuffle_buffer", shuffle_buffer, 1)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        sets = _open_sets(shards, url_prefix)
        self.shard_sets: dict[str, TaskShards] = merge_tasks(sets, split)
        if not self.shard_sets:
            raise ValueError(f"shards={[str(s.root) for s in sets]}: no samples in split {split!r}; "
                             "build the shard set with a train split")
        self.tasks = sorted(self.shard_sets)
        self.counts = {t: sum(s.sizes) for t, s in self.shard_sets.items()}
        self.repeats: dict[str, float] = {}
        for shard_set in sets:
            for task, factor in shard_set.manifest.repeats.items():
                self.repeats.setdefault(task, factor)
        self.batch_size, self.crop, self.seed = batch_size, crop, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.loader_workers = min(max(1, num_workers), batch_size)  # slices per batch (1: main process)
        self.shuffle_buffer, self.strict_shards = shuffle_buffer, strict_shards
        global_batch = batch_size * world_size
        wanted = samples_per_epoch if samples_per_epoch is not None else round(
            sum(n * self.repeats.get(t, 1.0) for t, n in self.counts.items()))
        self.steps_per_epoch = int(wanted) // global_batch
        if self.steps_per_epoch < 1:
            raise ValueError(f"samples_per_epoch={wanted} is less than one global batch "
                             f"(batch_size {batch_size} x world_size {world_size}); lower the batch size")
        self.samples_per_epoch = self.steps_per_epoch * global_batch
        for shard_set in sets:
            check_crop_fits_patches(shard_set, crop)
        self._augment = PairedAugment(crop)
        self._ranges: dict[str, list[tuple[int, int]]] = {}  # patched shard URL -> item sample ranges
        self.reader = ShardReader(retry=retry or RetryPolicy(), cache_size=len(self.tasks) + 1)
        self._skipped: dict[str, str] = {}  # shard url -> why it was skipped
        self._pending_skips: dict[str, str] = {}  # found in this process, not yet reported in a batch
        self._replaced = 0
        self.epoch, self.step, self._generation = 0, 0, 0
        self._weights = self._normalise(sets[0].manifest.default_balance if weights is None else weights, "weights")
        self._history: list[tuple[int, dict[str, float]]] = [(0, self._weights)]
        self._seen_before = Counter({t: 0 for t in self.tasks})
        self._plan_key: tuple | None = None
        self._plan_value: tuple[list[Segment], dict] = ([], {})

    # ------------------------------------------------------------ public state

    @property
    def weights(self) -> dict[str, float]:
        """The weights in force now (normalised, every task listed)."""
        return dict(self._weights)

    @property
    def skipped_shards(self) -> int:
        """Number of distinct shards found unusable so far (by this rank, all its workers)."""
        return len(self._skipped)

    @property
    def skipped_shard_urls(self) -> list[str]:
        """The unusable shards found so far, sorted."""
        return sorted(self._skipped)

    @property
    def skipped_shard_reasons(self) -> dict[str, str]:
        """Unusable shard URL -> the reason it was skipped."""
        return dict(sorted(self._skipped.items()))

    @property
    def replaced_samples(self) -> int:
        """Planned samples that were unreadable or undecodable and replaced by others of their task."""
        return self._replaced

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first step (weights carry over)."""
        _check_int("epoch", epoch, 0)
        self._seen_before.update(self._seen_in_epoch(self.step))
        self.epoch, self.step = epoch, 0
        self._history = [(0, self._weights)]
        self._generation += 1

    def set_weights(self, weights: Mapping[str, float] | str) -> None:
        """Use ``weights`` from the next global step on. Call identically on every rank."""
        self._weights = self._normalise(weights, "set_weights")
        if self._history[-1][0] == self.step:
            self._history[-1] = (self.step, self._weights)
        else:
            self._history.append((self.step, self._weights))
        self._generation += 1

    def samples_seen(self) -> dict[str, int]:
        """Samples per task this rank has yielded since epoch 0 (sum it over ranks for the total)."""
        seen = self._seen_before + Counter(self._seen_in_epoch(self.step))
        return {t: int(seen[t]) for t in self.tasks}

    def state_dict(self) -> dict:
        """Position and settings, as plain Python values (safe for ``torch.load(weights_only=True)``)."""
        return {"epoch": self.epoch, "step": self.step,
                "weight_history": [[s, dict(w)] for s, w in self._history],
                "weights": dict(self._weights), "samples_seen_before_epoch": dict(self._seen_before),
                "skipped_shards": dict(sorted(self._skipped.items())), "replaced_samples": self._replaced,
                "config": self._config()}

    def load_state_dict(self, state: Mapping) -> None:
        """Resume at the saved position. The settings must match the saved ones (else ValueError)."""
        saved = dict(state["config"])
        if "layout" not in saved and self.loader_workers == 1:
            saved["layout"] = _LAYOUT  # saved before slices: with one worker per rank the plan is the same
        mismatched = {k: (saved.get(k), v) for k, v in self._config().items() if saved.get(k) != v}
        if "layout" in mismatched:
            raise ValueError(f"load_state_dict: the stream was saved by an older anyir in which each of the "
                             f"{saved.get('num_workers')} loader workers made whole batches; its mid-epoch "
                             "position cannot be replayed now that workers make slices of every batch. "
                             "Resume from a checkpoint at an epoch boundary, or start the run again")
        if mismatched:
            raise ValueError(f"load_state_dict: the stream was saved with other settings "
                             f"(field: (saved, now)) {mismatched}; resume with the saved settings")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self._history = [(int(s), {t: float(x) for t, x in w.items()}) for s, w in state["weight_history"]]
        self._weights = {t: float(x) for t, x in state["weights"].items()}
        self._seen_before = Counter({t: int(n) for t, n in state["samples_seen_before_epoch"].items()})
        skipped = state.get("skipped_shards", {})
        self._skipped = dict(skipped) if isinstance(skipped, Mapping) else {u: "skipped" for u in skipped}
        self._replaced = int(state.get("replaced_samples", 0))
        self._generation += 1

    def _config(self) -> dict:
        return {"layout": _LAYOUT, "seed": self.seed, "batch_size": self.batch_size, "world_size": self.world_size,
                "rank": self.rank,
                "num_workers": self.num_workers, "samples_per_epoch": self.samples_per_epoch,
                "tasks": list(self.tasks), "crop": self.crop, "shuffle_buffer": self.shuffle_buffer}

    def _normalise(self, weights: Mapping[str, float] | str, name: str) -> dict[str, float]:
        if isinstance(weights, str):
            return resolve_weights(weights, self.counts, self.repeats)
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown or any(not w >= 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"{name}={dict(weights)}: need weights >= 0 with a positive sum for tasks "
                             f"{self.tasks} (unknown: {unknown})")
        total = float(sum(weights.values()))
        return {t: float(weights.get(t, 0.0)) / total for t in self.tasks}

    # ------------------------------------------------------------ planning

    def plan(self) -> tuple[list[Segment], dict]:
        """The epoch's plan (segments and each consumer's ranges), computed once per weight history."""
        return self._plan()

    def _plan(self) -> tuple[list[Segment], dict]:
        key = (self.epoch, tuple((s, tuple(sorted(w.items()))) for s, w in self._history))
        if self._plan_key != key:
            segments = plan_epoch(self.tasks, self._history, self.steps_per_epoch, self.world_size,
                                  self.batch_size, self.seed, self.epoch, self.loader_workers)
            ranges = allocate_ranges(segments, len(self.tasks), self.world_size, self.loader_workers)
            self._plan_key, self._plan_value = key, (segments, ranges)
        return self._plan_value

    def _seen_in_epoch(self, upto_step: int) -> dict[str, int]:
        segments, _ = self._plan()
        ids = np.concatenate([s.slots[: max(0, upto_step - s.start), self.rank].ravel() for s in segments])
        counts = np.bincount(ids.astype(np.int64), minlength=len(self.tasks))
        return {t: int(counts[i]) for i, t in enumerate(self.tasks)}

    # ------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        if info is not None:  # a DataLoader worker: its slice of every batch, state stays with the loader
            if info.num_workers != self.loader_workers:
                raise ValueError(f"MixtureStream was planned for {self.loader_workers} loader workers but the "
                                 f"DataLoader has {info.num_workers}; use anyir.data.loader.make_loader(...)")
            parts = self.iter_worker(info.id, self.step)
            while chunk := list(itertools.islice(parts, self.loader_workers)):
                yield pack_chunk([part for _, part in chunk])
            return
        yield from self._iter_tracked()

    def _iter_tracked(self) -> Iterator[dict]:
        """Main-process iteration: every worker's slice of each step, joined, tracking the position."""
        epoch = self.epoch
        while self.epoch == epoch:
            generation, start = self._generation, self.step
            slices = [self.iter_worker(w, start) for w in range(self.loader_workers)]
            for parts in zip(*slices, strict=True):
                batch = join_slices([part for _, part in parts])
                self.advance(batch)
                yield batch
                if self._generation != generation or self.epoch != epoch:
                    break
            else:
                return

    def advance(self, batch: dict) -> None:
        """Record that ``batch`` was consumed (called by the loader; pops its private fields)."""
        step = batch.pop("_step")
        self._skipped.update(batch.pop("_skipped"))
        self._replaced += batch.pop("_replaced")
        self.reader.verified.update({u: tuple(v) for u, v in batch.pop("_verified").items()})  # collate made lists
        assert step == self.step, f"stream out of step: got step {step}, expected {self.step}"
        self.step += 1
        if self.step == self.steps_per_epoch:
            self.set_epoch(self.epoch + 1)

    def iter_worker(self, worker: int, start_step: int) -> Iterator[tuple[int, dict]]:
        """(step, slice) for loader worker ``worker`` when iteration starts at ``start_step``.

        Worker ``w`` makes slice ``w`` of every batch from ``start_step`` on (:func:`join_slices`
        joins them); the steps before ``start_step`` are replayed on raw samples, so a resumed
        stream reads what an uninterrupted one would.
        """
        c = self.rank * self.loader_workers + worker
        segments, ranges = self._plan()
        queues = [self._queue(t, c) for t in self.tasks]
        for j, seg in enumerate(segments):
            for t_idx, queue in enumerate(queues):
                if (j, c, t_idx) in ranges:
                    queue.extend(*ranges[j, c, t_idx])
            for step, row in zip(range(seg.start, seg.end),
                                 seg.consumer_slots(self.rank, worker, self.loader_workers), strict=True):
                if step < start_step:
                    for t_idx in row:  # replay: raw reads only, no decoding
                        queues[t_idx].pop()
                    for queue in queues:
                        queue.replaced = 0  # counted before the restart, in the saved state
                else:
                    yield step, self._batch(step, [queues[t_idx] for t_idx in row], queues)

    def _queue(self, task: str, consumer: int) -> TaskQueue:
        shards = self.shard_sets[task]
        order = TaskOrder(list(shards.sizes), self.seed, self.epoch, task)

        def read(q: int) -> RawSample | None:
            shard, offset = order.locate(q)
            return self._read(shards.refs[shard], offset, (self.seed, self.epoch, task, q))

        rng = rng_from_key("stream-buffer", self.seed, self.epoch, consumer, task)
        return TaskQueue(task, order, read, self.shuffle_buffer, rng)

    def _read(self, ref: ShardRef, item: int, visit: tuple) -> RawSample | None:
        """The sample of source item ``item`` of a shard (a seeded one of its patches, when cut into
        patches), or None when the shard is unusable (skipped, recorded)."""
        if ref.url in self._skipped:
            return None
        try:
            shard = self.reader.shard(ref)
            if ref.source_samples == ref.samples:  # one sample per item
                return shard[item]
            start, end = self._item_ranges(ref, shard)[item]
            return shard[start + choose_patch(end - start, *visit)]
        except ShardError as err:
            if self.strict_shards:
                raise
            self._skipped[ref.url] = err.reason
            self._pending_skips[ref.url] = err.reason
            warnings.warn(f"skipping shard {err}; its samples are replaced by others of task {ref.task}",
                          ShardSkippedWarning, stacklevel=2)
            return None

    def _item_ranges(self, ref: ShardRef, shard: Shard) -> list[tuple[int, int]]:
        """Sample ranges of the items of a patched shard (cached per URL); ShardCorrupt when they
        do not match the manifest's item count."""
        ranges = self._ranges.get(ref.url)
        if ranges is None:
            ranges = item_ranges([raw.meta.get("item", raw.key) for raw in shard.samples])
            if len(ranges) != ref.source_samples:
                raise ShardCorrupt(ref, f"its {ref.samples} patches belong to {len(ranges)} source samples, "
                                        f"the manifest says {ref.source_samples}; rebuild the shard set")
            self._ranges[ref.url] = ranges
        return ranges

    def _batch(self, step: int, picked: list[TaskQueue], queues: list[TaskQueue]) -> dict:
        lqs, gts, keys = [], [], []
        for queue in picked:
            pair = self._decode(queue.task, *queue.pop())
            while pair is None:  # an undecodable sample: a spare keeps the plan's positions intact
                queue.replaced += 1
                pair = self._decode(queue.task, *queue.spare())
            lqs.append(pair[0])
            gts.append(pair[1])
            keys.append(pair[2])
        replaced = sum(q.replaced for q in queues)
        for q in queues:
            q.replaced = 0
        skipped, self._pending_skips = self._pending_skips, {}
        verified, self.reader.newly_verified = self.reader.newly_verified, {}
        return {"lq": to_batch(lqs), "gt": to_batch(gts), "task": [q.task for q in picked], "key": keys,
                "_step": step, "_skipped": skipped, "_replaced": replaced, "_verified": verified}

    def _decode(self, task: str, q: int, raw: RawSample) -> tuple[np.ndarray, np.ndarray, str] | None:
        try:
            gt, lq = decode_pair(raw)
            lq, gt = self._augment(gt, lq, raw.meta.get("online_noise_sigma"), self.seed, self.epoch, raw.key, q)
        except (KeyError, ValueError, ImageReadError) as exc:
            if self.strict_shards:
                raise
            warnings.warn(f"skipping sample {raw.key} of task {task} in {raw.shard}: {type(exc).__name__}: {exc}",
                          ShardSkippedWarning, stacklevel=2)
            return None
        return lq, gt, raw.key
