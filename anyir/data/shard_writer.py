"""Write one WebDataset tar of a shard set: its samples, encoded, under reproducible tar headers.

Reproducible by construction: items arrive sorted by key, every random choice is seeded by the
key, an item's patches (when the recipe cuts train images into patches) follow in index order,
tar headers have mtime 0 and fixed owner/mode, and each shard is built independently of the
others (so the bytes do not depend on the number of workers). A tar is written under a
temporary name and renamed when complete. Orchestration (scan, plan, workers, manifest, the
swap into place) lives in :mod:`anyir.data.build`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anyir.data.codec import encode
from anyir.data.images import ImageReadError
from anyir.data.manifest import ShardInfo
from anyir.data.patches import patch_boxes, patch_key
from anyir.data.reader import keys_digest
from anyir.data.sources.base import Rejection, WorkItem, item_rejection
from anyir.data.sources.materialize import SampleError, materialize


@dataclass(frozen=True)
class ShardJob:
    """One tar file to write: its items, in key order (each item one sample, or its patches)."""

    task: str
    split: str
    index: int
    items: tuple[WorkItem, ...]
    seed: int
    image_format: str
    compress_level: int
    out_dir: str
    patch: tuple[int, int] | None = None  # (size, stride) of the patch cut; None: whole images

    @property
    def relpath(self) -> str:
        """``<task>/<split>-NNNNNN.tar``, relative to the shard set folder."""
        return f"{self.task}/{self.split}-{self.index:06d}.tar"


@dataclass
class ShardResult:
    """What a worker reports back for one job."""

    job: ShardJob
    info: ShardInfo | None
    datasets: Counter = field(default_factory=Counter)  # items (source samples) written per dataset id
    sources: Counter = field(default_factory=Counter)  # items (source samples) written per recipe source
    rejections: list[Rejection] = field(default_factory=list)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def sample_members(gt: np.ndarray, lq: np.ndarray | None, meta: dict, image_format: str = "png",
                   compress_level: int = 1) -> dict[str, bytes]:
    """The tar members of one sample: ``gt.<fmt>``, ``json``, and ``lq.<fmt>`` unless noise is online."""
    members = {f"gt.{image_format}": encode(gt, image_format, compress_level),
               "json": json.dumps(meta, sort_keys=True).encode("utf-8")}
    if lq is not None:
        members[f"lq.{image_format}"] = encode(lq, image_format, compress_level)
    return members


def item_samples(item: WorkItem, seed: int, image_format: str = "png", compress_level: int = 1,
                 patch: tuple[int, int] | None = None) -> list[tuple[str, dict[str, bytes]]]:
    """(sample key, members) of one work item: one sample, or one per patch (see anyir.data.patches)."""
    gt, lq, meta = materialize(item, seed)
    if patch is None:
        return [(item.key, sample_members(gt, lq, meta, image_format, compress_level))]
    height, width = gt.shape[:2]
    boxes = patch_boxes(height, width, *patch)
    samples = []
    for index, (top, left, h, w) in enumerate(boxes):
        key = patch_key(item.key, index)
        window = (slice(top, top + h), slice(left, left + w))
        patch_meta = {**meta, "key": key, "item": item.key, "height": h, "width": w,
                      "patch": {"index": index, "count": len(boxes), "top": top, "left": left,
                                "source_height": height, "source_width": width}}
        samples.append((key, sample_members(np.ascontiguousarray(gt[window]),
                                            None if lq is None else np.ascontiguousarray(lq[window]),
                                            patch_meta, image_format, compress_level)))
    return samples


def write_shard(job: ShardJob) -> ShardResult:
    """Write one tar (temp name, then rename). Bad inputs become rejections, not exceptions."""
    result = ShardResult(job, None)
    target = Path(job.out_dir) / job.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    keys: list[str] = []
    items = 0
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for item in job.items:
            try:
                samples = item_samples(item, job.seed, job.image_format, job.compress_level, job.patch)
            except (ImageReadError, SampleError) as exc:
                result.rejections.append(item_rejection(item, str(exc)))
                continue
            for key, members in samples:
                for kind, data in members.items():
                    _add_member(tar, f"{key}.{kind}", data)
                keys.append(key)
            items += 1
            result.datasets[item.dataset] += 1
            result.sources[item.source] += 1
    if not keys:
        tmp.unlink()
        return result
    data = tmp.read_bytes()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())  # on disk before the manifest can list it
    os.replace(tmp, target)
    result.info = ShardInfo(path=job.relpath, samples=len(keys), items=items, bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), keys_sha256=keys_digest(keys))
    return result
