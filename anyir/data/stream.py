"""Stream a shard set's train split as an exact per-task mixture, across ranks and workers.

Usage::

    loader = make_loader("shards/demo", weights="uniform", batch_size=8, crop=128, num_workers=2)
    for epoch in range(3):
        for batch in loader:          # the rest of the current epoch; then the next epoch starts
            batch["lq"], batch["gt"]  # float32 Bx3xCxC in [0, 1]; batch["task"], batch["key"]: lists
        state = loader.state_dict()   # plain dict: save it with the checkpoint

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
  batch for batch: each worker replays the epoch so far on raw tar bytes (no decoding) to
  rebuild its shuffle buffers. ``set_weights()`` takes effect from the next global step.
* Safe decoding: only ``gt.png``, ``lq.png`` and ``json`` members are ever read; any other member
  (``.pyd``, ``.pickle``, ``.pth``) is skipped unread. No webdataset decoder is used.
* A truncated or corrupt shard is skipped from the point where it fails, with a
  :class:`ShardSkippedWarning` naming it; it is counted in ``skipped_shards`` and the missing
  samples are replaced by other samples of the same task (so counts stay exact).

Remote shards. The manifest is always read locally; tar files may live anywhere webdataset's
``gopen`` can read (local path, ``http(s)://``, ``pipe:`` command). ``url_prefix`` maps a
manifest path (``derain/train-000000.tar``) to a URL: ``{path}`` in the prefix is replaced by
it, otherwise the path is appended after a ``/``. S3 example::

    make_loader("shards/aio3", batch_size=8,
                url_prefix="pipe:aws s3 cp s3://my-bucket/shards/aio3/{path} -")

``pipe:`` runs a shell command: only use shard lists you trust (webdataset's ``WDS_SECURE=1``
forbids ``pipe:`` but also local paths).

Trade-off chosen for sequential reads: each consumer (rank x loader worker) reads a contiguous
run of a task's samples (shards in a seeded order, samples in stored order, from a seeded
offset), then mixes them in a per-consumer shuffle buffer of ``shuffle_buffer`` raw samples per
task. Reads are sequential and each byte is read about once per epoch, but mixing is local:
samples stored next to each other (e.g. crops of one photo) tend to appear within the same few
hundred batches. Positioning inside a shard re-reads it from the start (raw bytes, not decoded).
A resume or a ``set_weights`` call restarts the loader workers, which replay this epoch's raw
reads so far: cheap on local disk, but with remote shards prefer infrequent weight changes.
"""

from __future__ import annotations

import heapq
import json
import os
import posixpath
import tarfile
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from anyir.data.augment import PairedAugment, to_batch
from anyir.data.balance import resolve_weights
from anyir.data.images import ImageReadError, decode_image
from anyir.data.manifest import Manifest, load_manifest
from anyir.data.mixture import Segment, TaskOrder, allocate_ranges, plan_epoch
from anyir.degrade.seeding import rng_from_key

WANTED_MEMBERS = ("gt.png", "lq.png", "json")
RawSample = tuple[str, dict[str, bytes], str]  # (key, wanted members, shard url)


class ShardSkippedWarning(UserWarning):
    """A shard (or a sample in it) could not be read and was skipped."""


# ---------------------------------------------------------------- locating and reading shards


@dataclass(frozen=True)
class TaskShards:
    """The train shards of one task, merged over shard sets: URLs and sample counts."""

    urls: tuple[str, ...]
    sizes: tuple[int, ...]


def shard_url(shard_dir: str | Path, rel_path: str, url_prefix: str | None = None) -> str:
    """URL of one tar file: a local path, or ``url_prefix`` with the manifest path filled in."""
    if url_prefix is None:
        return str(Path(shard_dir) / rel_path)
    if "{path}" in url_prefix:
        return url_prefix.replace("{path}", rel_path)
    return url_prefix.rstrip("/") + "/" + rel_path


def _read_manifest(shard_dir: Path, remote: bool) -> Manifest:
    # Remote tars are not local files: check only the manifest itself.
    return load_manifest(shard_dir, check_files=not remote)


def collect_shards(shards: str | Path | Sequence[str | Path], url_prefix: str | Sequence[str | None] | None,
                   split: str) -> tuple[dict[str, TaskShards], dict[str, int], dict[str, float], str]:
    """Merge the tasks of one or more shard sets: (shards per task, counts, repeats, default balance)."""
    dirs = [Path(shards)] if isinstance(shards, (str, Path)) else [Path(d) for d in shards]
    prefixes = list(url_prefix) if isinstance(url_prefix, (list, tuple)) else [url_prefix] * len(dirs)
    if not dirs or len(prefixes) != len(dirs):
        raise ValueError(f"shards={shards!r}, url_prefix={url_prefix!r}: give one or more shard dirs and "
                         "either one url_prefix or one per dir")
    urls: dict[str, list[str]] = {}
    sizes: dict[str, list[int]] = {}
    repeats: dict[str, float] = {}
    manifests = [_read_manifest(d, p is not None) for d, p in zip(dirs, prefixes, strict=True)]
    for d, prefix, manifest in zip(dirs, prefixes, manifests, strict=True):
        for task in manifest.tasks(split):
            for info in manifest.shards(task, split):
                urls.setdefault(task, []).append(shard_url(d, info.path, prefix))
                sizes.setdefault(task, []).append(info.samples)
            repeats.setdefault(task, manifest.repeats.get(task, 1.0))
    if not urls:
        raise ValueError(f"shards={[str(d) for d in dirs]}: no samples in split {split!r}; "
                         "build the shard set with a train split")
    tasks = {t: TaskShards(tuple(urls[t]), tuple(sizes[t])) for t in sorted(urls)}
    counts = {t: sum(s.sizes) for t, s in tasks.items()}
    return tasks, counts, repeats, manifests[0].default_balance


def _sample_key(name: str) -> tuple[str, str]:
    # webdataset convention: the key is the path up to the first dot of the file name.
    folder, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(folder, stem), ext


def iter_tar_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (key, {member: bytes}) per sample of one tar, in stored order, reading sequentially.

    Only :data:`WANTED_MEMBERS` are read; other members are skipped without being read. Read
    errors (truncated or corrupt tar) propagate to the caller.
    """
    from webdataset import gopen  # local import: webdataset is only needed when reading

    stream = gopen(url, "rb")
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            key, members = None, {}
            for info in tar:
                if not info.isfile():
                    continue
                k, ext = _sample_key(info.name)
                if k != key:
                    if key is not None:
                        yield key, members
                    key, members = k, {}
                if ext in WANTED_MEMBERS:
                    members[ext] = tar.extractfile(info).read()
            if key is not None:
                yield key, members
    finally:
        try:
            stream.close()
        except Exception:  # a pipe: command killed early may report a status; nothing to do
            pass


class ShardCursor:
    """Forward-only reader of samples by (shard url, offset); reopens a shard to go back.

    ``limits`` (shared per process) records how many samples of a broken shard are readable: it
    is a property of the file, so results never depend on what was read before.
    """

    def __init__(self, limits: dict[str, int], expected: dict[str, int], skipped: list[str]):
        self._limits, self._expected, self.newly_skipped = limits, expected, skipped
        self._url: str | None = None
        self._it: Iterator[tuple[str, dict[str, bytes]]] | None = None
        self._pos = 0

    def read(self, url: str, offset: int) -> RawSample | None:
        """The sample at ``offset`` in shard ``url``, or None when that part of the shard is unreadable."""
        if offset >= self._limits.get(url, offset + 1):
            return None
        if url != self._url or offset < self._pos:
            self.close()
            self._url, self._it, self._pos = url, iter_tar_samples(url), 0
        while True:
            try:
                key, members = next(self._it)
                if "gt.png" not in members or "json" not in members:
                    raise tarfile.ReadError(f"sample {key!r} lacks gt.png or json (cut short?)")
            except StopIteration:
                return self._fail(url, ValueError(f"ends after {self._pos} samples"), offset)
            except Exception as exc:  # tarfile.ReadError, EOFError, OSError, zlib.error, ...
                return self._fail(url, exc, offset)
            self._pos += 1
            if self._pos - 1 == offset:
                return key, members, url

    def close(self) -> None:
        """Close the open shard, if any."""
        if self._it is not None:
            self._it.close()
        self._url = self._it = None

    def _fail(self, url: str, exc: Exception, offset: int) -> None:
        self._limits[url] = self._pos
        self.close()
        self.newly_skipped.append(url)
        warnings.warn(f"skipping unreadable shard {url} from sample {self._pos} of {self._expected.get(url, '?')} "
                      f"({type(exc).__name__}: {exc}); its samples are replaced by others of the same task",
                      ShardSkippedWarning, stacklevel=3)
        return None


class TaskQueue:
    """One consumer's reading of one task: ranges of positions, read in order, mixed in a buffer.

    ``extend`` appends a range handed out by the plan; ``pop`` returns a random one of the next
    ``buffer_size`` readable samples (a seeded shuffle buffer over raw bytes). When every planned
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
            if (raw := self._read(q)) is not None:
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
        raise RuntimeError(f"task {self.task!r}: no readable sample left in its shards; rebuild or remove them")


# ---------------------------------------------------------------- the stream


def dist_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class MixtureStream(IterableDataset):
    """Exact per-task mixture over the train split of one or more shard sets (see module docs).

    Args:
        shards: a shard set folder (holding ``manifest.json``), or a list of them (tasks merged).
        weights: task -> weight (normalised; missing tasks get 0), a balance spec string
            (``uniform``, ``temperature:2``, ...), or None for the manifest's default balance.
        batch_size: samples per batch on this rank.
        crop: square training crop in pixels.
        seed: the stream's seed (order, crops, flips, online noise).
        samples_per_epoch: samples per epoch over all ranks; default: available samples x the
            manifest's repeat factors. Rounded down to a multiple of ``batch_size x world_size``.
        rank, world_size: this process in the distributed job (see :func:`dist_env`).
        num_workers: DataLoader workers that will iterate this stream (0: the main process).
        shuffle_buffer: raw samples per task held by each worker for mixing.
        url_prefix: where the tar files live when not next to the manifest (one per shard set, or one).
        split: the split to stream.
    """

    def __init__(self, shards: str | Path | Sequence[str | Path], weights: Mapping[str, float] | str | None = None, *,
                 batch_size: int, crop: int = 128, seed: int = 0, samples_per_epoch: int | None = None,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, shuffle_buffer: int = 64,
                 url_prefix: str | Sequence[str | None] | None = None, split: str = "train"):
        _check_int("batch_size", batch_size, 1)
        _check_int("world_size", world_size, 1)
        _check_int("num_workers", num_workers, 0)
        _check_int("shuffle_buffer", shuffle_buffer, 1)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        self.shard_sets, self.counts, self.repeats, default_balance = collect_shards(shards, url_prefix, split)
        self.tasks = sorted(self.shard_sets)
        self.batch_size, self.crop, self.seed = batch_size, crop, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.shuffle_buffer = shuffle_buffer
        global_batch = batch_size * world_size
        wanted = samples_per_epoch if samples_per_epoch is not None else round(
            sum(n * self.repeats.get(t, 1.0) for t, n in self.counts.items()))
        self.steps_per_epoch = int(wanted) // global_batch
        if self.steps_per_epoch < 1:
            raise ValueError(f"samples_per_epoch={wanted} is less than one global batch "
                             f"(batch_size {batch_size} x world_size {world_size}); lower the batch size")
        self.samples_per_epoch = self.steps_per_epoch * global_batch
        self._augment = PairedAugment(crop)
        self._url_sizes = {u: n for s in self.shard_sets.values() for u, n in zip(s.urls, s.sizes, strict=True)}
        self._limits: dict[str, int] = {}
        self._skipped: set[str] = set()
        self._newly_skipped: list[str] = []
        self.epoch, self.step, self._generation = 0, 0, 0
        self._weights = self._normalise(default_balance if weights is None else weights, "weights")
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
        """Number of distinct shards found unreadable so far (by this rank, all its workers)."""
        return len(self._skipped)

    @property
    def skipped_shard_urls(self) -> list[str]:
        """The unreadable shards found so far, sorted."""
        return sorted(self._skipped)

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
                "skipped_shards": sorted(self._skipped), "config": self._config()}

    def load_state_dict(self, state: Mapping) -> None:
        """Resume at the saved position. The settings must match the saved ones (else ValueError)."""
        saved = dict(state["config"])
        mismatched = {k: (saved.get(k), v) for k, v in self._config().items() if saved.get(k) != v}
        if mismatched:
            raise ValueError(f"load_state_dict: the stream was saved with other settings "
                             f"(field: (saved, now)) {mismatched}; resume with the saved settings")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self._history = [(int(s), {t: float(x) for t, x in w.items()}) for s, w in state["weight_history"]]
        self._weights = {t: float(x) for t, x in state["weights"].items()}
        self._seen_before = Counter({t: int(n) for t, n in state["samples_seen_before_epoch"].items()})
        self._skipped = set(state.get("skipped_shards", []))
        self._generation += 1

    def _config(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size, "world_size": self.world_size, "rank": self.rank,
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

    def _plan(self) -> tuple[list[Segment], dict]:
        key = (self.epoch, tuple((s, tuple(sorted(w.items()))) for s, w in self._history))
        if self._plan_key != key:
            segments = plan_epoch(self.tasks, self._history, self.steps_per_epoch, self.world_size,
                                  self.batch_size, self.seed, self.epoch)
            ranges = allocate_ranges(segments, len(self.tasks), self.world_size, max(1, self.num_workers))
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
        if info is not None:  # a DataLoader worker: its share of the steps, state stays with the loader
            if info.num_workers != max(1, self.num_workers):
                raise ValueError(f"MixtureStream was planned for num_workers={self.num_workers} but the "
                                 f"DataLoader has {info.num_workers}; use make_loader(...)")
            for _, batch in self.iter_worker(info.id, self.step):
                yield batch
            return
        yield from self._iter_tracked()

    def _iter_tracked(self) -> Iterator[dict]:
        """Main-process iteration over all workers' shares in step order, tracking the position."""
        epoch = self.epoch
        while self.epoch == epoch:
            generation, start = self._generation, self.step
            shares = [self.iter_worker(w, start) for w in range(max(1, self.num_workers))]
            for _, batch in heapq.merge(*shares, key=lambda sb: sb[0]):
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
        assert step == self.step, f"stream out of step: got step {step}, expected {self.step}"
        self.step += 1
        if self.step == self.steps_per_epoch:
            self.set_epoch(self.epoch + 1)

    def iter_worker(self, worker: int, start_step: int) -> Iterator[tuple[int, dict]]:
        """(step, batch) for loader worker ``worker`` when iteration starts at ``start_step``.

        Worker ``w`` makes steps ``start_step + w + k * num_workers``: it plays consumer
        ``(start_step + w) % num_workers`` of the plan, so a resumed stream reads what an
        uninterrupted one would (steps before ``start_step`` are replayed on raw bytes).
        """
        n_workers = max(1, self.num_workers)
        consumer = (start_step + worker) % n_workers
        c = self.rank * n_workers + consumer
        segments, ranges = self._plan()
        queues = [self._queue(t, c) for t in self.tasks]
        for j, seg in enumerate(segments):
            for t_idx, queue in enumerate(queues):
                if (j, c, t_idx) in ranges:
                    queue.extend(*ranges[j, c, t_idx])
            first = seg.start + (consumer - seg.start) % n_workers
            for step, row in zip(range(first, seg.end, n_workers),
                                 seg.consumer_slots(self.rank, consumer, n_workers), strict=True):
                if step < start_step:
                    for t_idx in row:  # replay: raw reads only, no decoding
                        queues[t_idx].pop()
                else:
                    yield step, self._batch(step, [queues[t_idx] for t_idx in row])

    def _queue(self, task: str, consumer: int) -> TaskQueue:
        shards = self.shard_sets[task]
        order = TaskOrder(list(shards.sizes), self.seed, self.epoch, task)
        cursor = ShardCursor(self._limits, self._url_sizes, self._newly_skipped)

        def read(q: int) -> RawSample | None:
            shard, offset = order.locate(q)
            return cursor.read(shards.urls[shard], offset)

        rng = rng_from_key("stream-buffer", self.seed, self.epoch, consumer, task)
        return TaskQueue(task, order, read, self.shuffle_buffer, rng)

    def _batch(self, step: int, queues: list[TaskQueue]) -> dict:
        lqs, gts, keys = [], [], []
        for queue in queues:
            pair = self._decode(queue.task, *queue.pop())
            while pair is None:  # an undecodable sample: a spare keeps the plan's positions intact
                pair = self._decode(queue.task, *queue.spare())
            lqs.append(pair[0])
            gts.append(pair[1])
            keys.append(pair[2])
        skipped = sorted(set(self._newly_skipped))
        self._newly_skipped.clear()
        self._skipped.update(skipped)
        return {"lq": to_batch(lqs), "gt": to_batch(gts), "task": [q.task for q in queues], "key": keys,
                "_step": step, "_skipped": skipped}

    def _decode(self, task: str, q: int, raw: RawSample) -> tuple[np.ndarray, np.ndarray, str] | None:
        key, members, url = raw
        try:
            meta = json.loads(members["json"])
            gt = decode_image(members["gt.png"], f"{url}:{key}.gt.png")
            sigma = meta.get("online_noise_sigma")
            lq = None if sigma is not None else decode_image(members["lq.png"], f"{url}:{key}.lq.png")
            lq, gt = self._augment(gt, lq, sigma, self.seed, self.epoch, key, q)
        except (KeyError, ValueError, ImageReadError) as exc:
            warnings.warn(f"skipping sample {key} of task {task} in {url}: {type(exc).__name__}: {exc}",
                          ShardSkippedWarning, stacklevel=2)
            return None
        return lq, gt, key


def _check_int(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r}: must be an integer >= {minimum}")


# ---------------------------------------------------------------- the loader


class MixtureLoader:
    """A DataLoader over a :class:`MixtureStream` that tracks the consumed position.

    ``iter(loader)`` yields the rest of the current epoch; the next ``iter`` starts the next
    epoch. ``set_weights`` during iteration restarts the workers at the next step (prefetched
    batches planned with the old weights are dropped), so the change is exact.
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
        epoch = stream.epoch
        while stream.epoch == epoch:
            generation = stream._generation
            loader = DataLoader(stream, batch_size=None, num_workers=stream.num_workers,
                                pin_memory=self.pin_memory, prefetch_factor=self.prefetch_factor)
            for batch in loader:
                stream.advance(batch)
                yield batch
                if stream._generation != generation or stream.epoch != epoch:
                    break
            else:
                return

    # the stream's state, reached through the loader
    @property
    def steps_per_epoch(self) -> int:
        return self.stream.steps_per_epoch

    @property
    def skipped_shards(self) -> int:
        return self.stream.skipped_shards

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


def make_loader(shards: str | Path | Sequence[str | Path], weights: Mapping[str, float] | str | None = None, *,
                batch_size: int, crop: int = 128, seed: int = 0, samples_per_epoch: int | None = None,
                rank: int | None = None, world_size: int | None = None, num_workers: int = 0,
                shuffle_buffer: int = 64, url_prefix: str | Sequence[str | None] | None = None,
                pin_memory: bool = False) -> MixtureLoader:
    """A :class:`MixtureLoader` over the train split; rank/world_size default to torchrun's env."""
    env_rank, env_world = dist_env()
    stream = MixtureStream(shards, weights, batch_size=batch_size, crop=crop, seed=seed,
                           samples_per_epoch=samples_per_epoch,
                           rank=env_rank if rank is None else rank,
                           world_size=env_world if world_size is None else world_size,
                           num_workers=num_workers, shuffle_buffer=shuffle_buffer, url_prefix=url_prefix)
    return MixtureLoader(stream, pin_memory=pin_memory)
