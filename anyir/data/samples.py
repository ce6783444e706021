"""Decoded samples: a :class:`RawSample` from the reader turned into image arrays and metadata.

Used by evaluation, the adaptive balance's reference losses, inspection and the tests; the
training stream decodes the same way (:func:`decode_pair`), after its own crop planning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anyir.data.codec import decode
from anyir.data.reader import RawSample, ShardError, ShardReader
from anyir.data.shardset import ShardSet, as_shard_set


@dataclass
class Sample:
    """One degraded/clean pair. ``lq`` is None exactly when ``meta["online_noise_sigma"]`` is set."""

    key: str
    task: str
    split: str
    dataset: str
    meta: dict
    gt: np.ndarray
    lq: np.ndarray | None


def decode_pair(raw: RawSample) -> tuple[np.ndarray, np.ndarray | None]:
    """(gt, lq or None) of a raw sample; ValueError (or ImageReadError) naming the shard and key.

    ``npy`` members come back as read-only views of the shard's bytes (the training hot path:
    no copy); :func:`decode_sample` gives arrays of their own.
    """
    where = f"{raw.shard}:{raw.key}"
    online = raw.meta.get("online_noise_sigma") is not None
    gt_member, lq_member = raw.image("gt"), raw.image("lq")
    if gt_member is None:
        raise ValueError(f"{where}: no gt image member; rebuild the shards")
    if online == (lq_member is not None):
        raise ValueError(f"{where}: an lq image must be present exactly when online_noise_sigma is null")
    gt = decode(gt_member[0], gt_member[1], f"{where}.{gt_member[0]}")
    lq = None if lq_member is None else decode(lq_member[0], lq_member[1], f"{where}.{lq_member[0]}")
    if lq is not None and lq.shape != gt.shape:
        raise ValueError(f"{where}: lq {lq.shape} and gt {gt.shape} differ in size; rebuild the shards")
    return gt, lq


def decode_sample(raw: RawSample) -> Sample:
    """The decoded :class:`Sample` of a raw one, with arrays of its own (writable, not views of the shard)."""
    gt, lq = decode_pair(raw)
    gt = gt if gt.flags.writeable else gt.copy()
    lq = lq if lq is None or lq.flags.writeable else lq.copy()
    return Sample(key=raw.key, task=raw.meta["task"], split=raw.meta["split"], dataset=raw.meta["dataset"],
                  meta=raw.meta, gt=gt, lq=lq)


def iter_samples(shards: ShardSet | str | Path, split: str, tasks: list[str] | None = None,
                 reader: ShardReader | None = None,
                 on_error: Callable[[ShardError], None] | None = None) -> Iterator[Sample]:
    """Every sample of ``split`` (optionally only ``tasks``), decoded, task by task in manifest order.

    Shards are verified against the manifest first; a failing shard raises ShardError unless
    ``on_error`` is given (then it is reported and skipped).
    """
    shards = as_shard_set(shards)
    available = shards.tasks(split)
    unknown = sorted(set(tasks or []) - set(available))
    if unknown:
        raise ValueError(f"{shards.root}: no samples for tasks {unknown} in split {split!r}; available: {available}")
    reader = reader or ShardReader(cache_size=1)
    for raw in reader.iter_split(shards, split, tasks, on_error=on_error):
        yield decode_sample(raw)
