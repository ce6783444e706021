"""The shard set's index, ``manifest.json``: written last, so its presence means the build finished.

Format documented in ``shards/README.md``. Everything a reader needs (counts, shard files with
size and sha256, default balance, repeat factors, rejected inputs) is here, so nobody lists folders.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A shard set's manifest is missing, incomplete or inconsistent; the message says how to fix it."""


class ShardInfo(BaseModel):
    """One tar file: ``path`` relative to the shard set folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    samples: int
    bytes: int
    sha256: str


class TaskSplit(BaseModel):
    """The samples of one task in one split."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    samples: int
    datasets: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardInfo] = Field(default_factory=list)


class RejectionRecord(BaseModel):
    """An input that did not become a sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    task: str
    split: str
    file: str
    reason: str


class Manifest(BaseModel):
    """The parsed ``manifest.json`` of a shard set."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format_version: int = FORMAT_VERSION
    recipe_name: str
    recipe_hash: str
    seed: int
    default_balance: str
    repeats: dict[str, float] = Field(default_factory=dict)
    encoding: dict[str, object] = Field(default_factory=dict)
    splits: dict[str, dict[str, TaskSplit]] = Field(default_factory=dict)
    rejections: list[RejectionRecord] = Field(default_factory=list)
    notes: list[RejectionRecord] = Field(default_factory=list)  # inputs kept under a lenient rule
    recipe: dict[str, object] = Field(default_factory=dict)
    anyir_version: str = ""

    def tasks(self, split: str) -> list[str]:
        """Tasks with at least one sample in ``split``, sorted."""
        return sorted(t for t, ts in self.splits.get(split, {}).items() if ts.samples > 0)

    def counts(self, split: str) -> dict[str, int]:
        """Samples per task in ``split``."""
        return {t: self.splits[split][t].samples for t in self.tasks(split)}

    def shards(self, task: str, split: str) -> list[ShardInfo]:
        """Shard files of one task and split. Raises ManifestError for an unknown task/split."""
        try:
            return list(self.splits[split][task].shards)
        except KeyError:
            raise ManifestError(f"no task {task!r} in split {split!r}; the manifest has "
                                f"{ {s: sorted(ts) for s, ts in self.splits.items()} }") from None

    def datasets(self, task: str, split: str) -> dict[str, int]:
        """Samples per source dataset for one task and split."""
        return dict(self.splits[split][task].datasets)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, 1-space indent): the same build gives the same bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"


def write_manifest(manifest: Manifest, shard_dir: Path) -> Path:
    """Write ``manifest.json`` atomically (temp file + rename)."""
    target = Path(shard_dir) / MANIFEST_NAME
    tmp = target.with_name(f".{MANIFEST_NAME}.tmp-{os.getpid()}")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, target)
    return target


def load_manifest(shard_dir: str | Path, check_files: bool = True) -> Manifest:
    """Read and validate a shard set's manifest; every listed shard must exist (unless
    ``check_files=False``: the tar files live elsewhere, e.g. object storage).

    Raises ManifestError naming the folder and the fix when the set is missing or incomplete.
    """
    shard_dir = Path(shard_dir)
    path = shard_dir / MANIFEST_NAME
    if not path.is_file():
        hint = ("the build did not finish (the manifest is written last); rerun `anyir shards build`"
                if shard_dir.is_dir() else "the folder does not exist")
        raise ManifestError(f"{shard_dir}: no {MANIFEST_NAME}: {hint}. "
                            "Build one with `anyir shards build RECIPE --out DIR`")
    try:
        manifest = Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ManifestError(f"{path}: not a valid anyir manifest ({exc.error_count()} errors, first: "
                            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}); rebuild the shard set") from None
    missing = [s.path for tasks in manifest.splits.values() for ts in tasks.values()
               for s in ts.shards if check_files and not (shard_dir / s.path).is_file()]
    if missing:
        raise ManifestError(f"{shard_dir}: {len(missing)} shard file(s) listed in {MANIFEST_NAME} are missing, "
                            f"first {missing[0]}; rebuild with `anyir shards build`")
    return manifest


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_shards(shard_dir: str | Path) -> list[str]:
    """Recompute every shard's size and sha256; return one problem line per mismatching file."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    problems = []
    for tasks in manifest.splits.values():
        for ts in tasks.values():
            for shard in ts.shards:
                path = shard_dir / shard.path
                size = path.stat().st_size
                if size != shard.bytes:
                    problems.append(f"{shard.path}: {size} bytes, manifest says {shard.bytes}")
                elif file_sha256(path) != shard.sha256:
                    problems.append(f"{shard.path}: sha256 differs from the manifest (file modified or corrupt)")
    return problems
