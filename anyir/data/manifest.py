"""The shard set's index, ``manifest.json``: written last, so its presence means the build finished.

Format documented in ``shards/README.md``. Everything a reader needs (counts, shard files with
size, sha256 and a digest of their sample keys, default balance, repeat factors, rejected inputs,
the layout each source matched, the leak audit) is here, so nobody lists folders.

The model is strict, because a hand-edited or damaged manifest must not change what is trained on
without a word: counts are >= 1 and add up, repeat factors are > 0, and every shard path is
``<task>/<split>-NNNNNN.tar`` under its own task and split, so no path leaves the set's folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2
SHARD_PATH = r"^[A-Za-z0-9_\-]+/(train|test)-[0-9]{6}\.tar$"
HEX64 = r"^[0-9a-f]{64}$"


class ManifestError(ValueError):
    """A shard set's manifest is missing, incomplete or inconsistent; the message says how to fix it."""


class ShardInfo(BaseModel):
    """One tar file: ``path`` relative to the shard set folder.

    ``samples`` counts the samples in the tar (patches, when train images are cut into patches);
    ``items`` the source samples they come from (equal without patches; absent in sets built before
    patches existed, meaning equal). Mixtures and balances count items (anyir.data.patches).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(pattern=SHARD_PATH)
    samples: int = Field(ge=1)
    items: int | None = Field(default=None, ge=1, description="source samples (<= samples)")
    bytes: int = Field(ge=1)
    sha256: str = Field(pattern=HEX64)
    keys_sha256: str = Field(pattern=HEX64, description="sha256 of the sample keys in tar order, one per line")

    @model_validator(mode="after")
    def _items_fit(self) -> ShardInfo:
        if self.items is not None and self.items > self.samples:
            raise ValueError(f"{self.path}: items={self.items} > samples={self.samples}")
        return self

    @property
    def source_samples(self) -> int:
        """Source samples (items) in the tar: what mixtures count."""
        return self.samples if self.items is None else self.items


class TaskSplit(BaseModel):
    """The samples of one task in one split: ``samples`` in the tars (patches included), ``items``
    source samples (absent: equal to samples); ``datasets`` counts source samples per dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    samples: int = Field(ge=1)
    items: int | None = Field(default=None, ge=1)
    datasets: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardInfo] = Field(min_length=1)

    @model_validator(mode="after")
    def _counts_add_up(self) -> TaskSplit:
        in_shards = sum(s.samples for s in self.shards)
        if in_shards != self.samples:
            raise ValueError(f"samples={self.samples} but its shards hold {in_shards}")
        items = sum(s.source_samples for s in self.shards)
        if self.items is not None and self.items != items:
            raise ValueError(f"items={self.items} but its shards hold {items}")
        if self.datasets and (sum(self.datasets.values()) != items or min(self.datasets.values()) < 1):
            raise ValueError(f"datasets {self.datasets} must be >= 1 each and add up to the source samples ({items})")
        return self

    @property
    def source_samples(self) -> int:
        """Source samples (items): the unit of balances, epochs and mixture counts."""
        return sum(s.source_samples for s in self.shards)


class RejectionRecord(BaseModel):
    """An input that did not become a sample (or, in ``notes``, one kept under a lenient rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    task: str
    split: str
    file: str
    reason: str


class SourceReport(BaseModel):
    """What one recipe source contributed, and which of its layout's variants matched."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    task: str
    split: str
    variant: str = ""
    items: int = Field(ge=0, description="samples the scan found (before encoding)")
    samples: int = Field(ge=0, description="samples written")
    rejections: int = Field(ge=0)
    notes: int = Field(ge=0)
    optional: bool = False


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
    sources: dict[str, SourceReport] = Field(default_factory=dict)
    rejections: list[RejectionRecord] = Field(default_factory=list)
    notes: list[RejectionRecord] = Field(default_factory=list)  # inputs kept under a lenient rule
    audit: dict[str, Any] | None = None  # the leak audit of test vs train samples (anyir.data.audit)
    recipe: dict[str, object] = Field(default_factory=dict)
    anyir_version: str = ""

    @field_validator("repeats")
    @classmethod
    def _positive_repeats(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {t: r for t, r in value.items() if not (math.isfinite(r) and r > 0)}
        if bad:
            raise ValueError(f"repeat factors must be finite and > 0, got {bad}")
        return value

    @model_validator(mode="after")
    def _paths_match_their_place(self) -> Manifest:
        for split, tasks in self.splits.items():
            for task, ts in tasks.items():
                for shard in ts.shards:
                    if not shard.path.startswith(f"{task}/{split}-"):
                        raise ValueError(f"shard {shard.path!r} is listed under task {task!r}, split {split!r}")
        return self

    def tasks(self, split: str) -> list[str]:
        """Tasks with at least one sample in ``split``, sorted."""
        return sorted(self.splits.get(split, {}))

    def counts(self, split: str) -> dict[str, int]:
        """Source samples (items) per task in ``split``: what balances and epochs count. Equal to
        the samples in the tars unless train images were cut into patches."""
        return {t: self.splits[split][t].source_samples for t in self.tasks(split)}

    def shards(self, task: str, split: str) -> list[ShardInfo]:
        """Shard files of one task and split. Raises ManifestError for an unknown task/split."""
        try:
            return list(self.splits[split][task].shards)
        except KeyError:
            raise ManifestError(f"no task {task!r} in split {split!r}; the manifest has "
                                f"{ {s: sorted(ts) for s, ts in self.splits.items()} }") from None

    def all_shards(self) -> list[ShardInfo]:
        """Every shard of every split and task."""
        return [s for tasks in self.splits.values() for ts in tasks.values() for s in ts.shards]

    def datasets(self, task: str, split: str) -> dict[str, int]:
        """Samples per source dataset for one task and split."""
        return dict(self.splits[split][task].datasets)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, 1-space indent): the same build gives the same bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"


def write_manifest(manifest: Manifest, shard_dir: Path) -> Path:
    """Write ``manifest.json`` atomically (temp file + fsync + rename)."""
    target = Path(shard_dir) / MANIFEST_NAME
    tmp = target.with_name(f".{MANIFEST_NAME}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(manifest.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(manifest)"
    return f"{loc}: {err['msg']}"


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
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not JSON ({exc}); rebuild the shard set with `anyir shards build`") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {version!r}, this anyir reads {FORMAT_VERSION}; "
                            "rebuild the shard set with `anyir shards build`")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"{path}: not a valid anyir manifest ({exc.error_count()} error(s), first: "
                            f"{_first_error(exc)}); rebuild the shard set or restore the file") from None
    missing = [s.path for s in manifest.all_shards() if check_files and not (shard_dir / s.path).is_file()]
    if missing:
        raise ManifestError(f"{shard_dir}: {len(missing)} shard file(s) listed in {MANIFEST_NAME} are missing, "
                            f"first {missing[0]}; rebuild with `anyir shards build`")
    return manifest
