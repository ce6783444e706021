"""Read samples back from a shard set (evaluation, tests, inspection).

Plain ``tarfile`` and only the three member kinds anyir writes (``gt.png``, ``lq.png``, ``json``):
anything else in a tar is skipped, never decoded, so a tampered shard cannot run code through
webdataset's pickle/torch decoders.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anyir.data.images import decode_image
from anyir.data.manifest import load_manifest

MEMBERS = ("gt.png", "lq.png", "json")


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


def iter_tar_members(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (key, {member kind: raw bytes}) per sample of one tar, in file order."""
    key, members = None, {}
    with tarfile.open(path, "r") as tar:
        for info in tar:
            if not info.isfile():
                continue
            base = info.name.rsplit("/", 1)[-1]
            k, _, kind = base.partition(".")
            if kind not in MEMBERS:
                continue  # never decode unknown member kinds
            if k != key and key is not None:
                yield key, members
                members = {}
            key = k
            members[kind] = tar.extractfile(info).read()
    if key is not None:
        yield key, members


def decode_sample(key: str, members: dict[str, bytes], where: str) -> Sample:
    """Decode one sample's members; raises ValueError naming the shard and key if one is missing."""
    if "gt.png" not in members or "json" not in members:
        raise ValueError(f"{where}: sample {key!r} lacks gt.png or json (has {sorted(members)}); rebuild the shards")
    meta = json.loads(members["json"].decode("utf-8"))
    online = meta.get("online_noise_sigma") is not None
    if online == ("lq.png" in members):
        raise ValueError(f"{where}: sample {key!r}: lq.png must be present exactly when online_noise_sigma is null")
    lq = decode_image(members["lq.png"], f"{where}:{key}.lq.png") if not online else None
    gt = decode_image(members["gt.png"], f"{where}:{key}.gt.png")
    if lq is not None and lq.shape != gt.shape:
        raise ValueError(f"{where}: sample {key!r}: lq {lq.shape} and gt {gt.shape} differ; rebuild the shards")
    return Sample(key=key, task=meta["task"], split=meta["split"], dataset=meta["dataset"], meta=meta, gt=gt, lq=lq)


def iter_samples(shard_dir: str | Path, split: str, tasks: list[str] | None = None) -> Iterator[Sample]:
    """All samples of ``split`` (optionally only ``tasks``), task by task in manifest shard order."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    available = manifest.tasks(split)
    wanted = available if tasks is None else list(tasks)
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise ValueError(f"{shard_dir}: no samples for tasks {unknown} in split {split!r}; available: {available}")
    for task in wanted:
        for shard in manifest.shards(task, split):
            for key, members in iter_tar_members(shard_dir / shard.path):
                yield decode_sample(key, members, shard.path)
