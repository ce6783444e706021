"""Write one WebDataset tar of a shard set: its samples, encoded, under reproducible tar headers.

Reproducible by construction: items arrive sorted by key, every random choice is seeded by the
key, tar headers have mtime 0 and fixed owner/mode, and each shard is built independently of
the others (so the bytes do not depend on the number of workers). A tar is written under a
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

from anyir.data.codec import encode
from anyir.data.images import ImageReadError
from anyir.data.manifest import ShardInfo
from anyir.data.reader import keys_digest
from anyir.data.sources.base import Rejection, WorkItem, item_rejection
from anyir.data.sources.materialize import SampleError, materialize


@dataclass(frozen=True)
class ShardJob:
    """One tar file to write: its items, in key order."""

    task: str
    split: str
    index: int
    items: tuple[WorkItem, ...]
    seed: int
    image_format: str
    compress_level: int
    out_dir: str

    @property
    def relpath(self) -> str:
        """``<task>/<split>-NNNNNN.tar``, relative to the shard set folder."""
        return f"{self.task}/{self.split}-{self.index:06d}.tar"


@dataclass
class ShardResult:
    """What a worker reports back for one job."""

    job: ShardJob
    info: ShardInfo | None
    datasets: Counter = field(default_factory=Counter)  # samples written per dataset id
    sources: Counter = field(default_factory=Counter)  # samples written per recipe source
    rejections: list[Rejection] = field(default_factory=list)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def sample_members(item: WorkItem, seed: int, image_format: str = "png", compress_level: int = 1) -> dict[str, bytes]:
    """The tar members of one sample: ``gt.<fmt>``, ``json``, and ``lq.<fmt>`` unless noise is online."""
    gt, lq, meta = materialize(item, seed)
    members = {f"gt.{image_format}": encode(gt, image_format, compress_level),
               "json": json.dumps(meta, sort_keys=True).encode("utf-8")}
    if lq is not None:
        members[f"lq.{image_format}"] = encode(lq, image_format, compress_level)
    return members


def write_shard(job: ShardJob) -> ShardResult:
    """Write one tar (temp name, then rename). Bad inputs become rejections, not exceptions."""
    result = ShardResult(job, None)
    target = Path(job.out_dir) / job.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    keys = []
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for item in job.items:
            try:
                members = sample_members(item, job.seed, job.image_format, job.compress_level)
            except (ImageReadError, SampleError) as exc:
                result.rejections.append(item_rejection(item, str(exc)))
                continue
            for kind, data in members.items():
                _add_member(tar, f"{item.key}.{kind}", data)
            keys.append(item.key)
            result.datasets[item.dataset] += 1
            result.sources[item.source] += 1
    if not keys:
        tmp.unlink()
        return result
    data = tmp.read_bytes()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())  # on disk before the manifest can list it
    os.replace(tmp, target)
    result.info = ShardInfo(path=job.relpath, samples=len(keys), bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), keys_sha256=keys_digest(keys))
    return result
