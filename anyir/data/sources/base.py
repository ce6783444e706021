"""What every source produces: work items (one future sample each) and rejections.

Scanning a source only lists files and pairs them by name; images are read later, in the
shard writer's workers, so a scan of 70k files stays fast and cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from anyir.degrade.specs import DegradationSpec

Resolver = Callable[[str], Path]  # expands ${data_root} and recipe-relative paths (Recipe.resolve)


@dataclass(frozen=True)
class Rejection:
    """An input that did not become a sample, and why."""

    source: str
    task: str
    split: str
    file: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The fields as a dict (for the manifest)."""
        return {"source": self.source, "task": self.task, "split": self.split, "file": self.file, "reason": self.reason}


@dataclass(frozen=True)
class WorkItem:
    """Everything a worker needs to produce one sample, picklable and independent of the others.

    ``gt``/``lq`` are image references (see :func:`anyir.data.sources.refs.load_ref`); ``lq`` is None
    when the degraded image is synthesised (``degradation``) or added online (``online_noise_sigma``).
    """

    key: str
    task: str
    split: str
    dataset: str
    source: str
    gt: str
    lq: str | None
    files: dict[str, str]
    crop_size: int | None = None
    crop_mode: str = "random"
    crop_index: int = 0
    crop_key: str = ""  # seeds the crop position; shared by the online-noise sigmas of one crop
    degradation: object | None = None  # a DegradationSpec model (pydantic models pickle)
    online_noise_sigma: float | None = None


@dataclass
class ScanResult:
    """Items found by a source scan, the inputs it rejected, and notes (inputs kept by a lenient rule)."""

    items: list[WorkItem] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[Rejection] = field(default_factory=list)


class CropSpec(BaseModel):
    """Fixed crops taken from each source image: ``per_image`` crops of ``size`` px (square).

    ``random`` positions are seeded from the sample key (recorded in metadata); ``center`` takes
    one centred crop. An image smaller than ``size`` is cropped to its shorter side.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    size: int = Field(gt=0)
    per_image: int = Field(default=1, ge=1)
    mode: str = Field(default="random", pattern="^(random|center)$")


class SourceBase(BaseModel):
    """Fields shared by every source kind in a recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    task: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    split: str = Field(pattern="^(train|test)$")
    dataset: str | None = None  # defaults to the source name
    max_samples: int | None = Field(default=None, gt=0)
    repeat: float = Field(default=1.0, gt=0)
    crop: CropSpec | None = None
    degradation: DegradationSpec | None = None

    @property
    def dataset_id(self) -> str:
        """The dataset id written into metadata: ``dataset``, else the source name."""
        return self.dataset or self.name


_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def make_key(source: str, relpath: str, *suffixes: object) -> str:
    """A stable sample key from the source name and a relative path: no dots, no slashes."""
    stem = _UNSAFE.sub("_", relpath).strip("_")
    parts = [source, stem, *(str(s) for s in suffixes)]
    return "__".join(p for p in parts if p)


def _crop_fields(source: SourceBase, crop_index: int) -> dict:
    crop = source.crop
    return {"crop_size": crop.size if crop else None, "crop_mode": crop.mode if crop else "random",
            "crop_index": crop_index}


def expand_clean(source: SourceBase, ref: str, relpath: str, files: dict[str, str]) -> list[WorkItem]:
    """Items for one CLEAN image: one per crop, times one per sigma when noise is added online.

    The sigmas of one crop share its position (``crop_key`` leaves the sigma out).
    """
    spec = source.degradation
    assert spec is not None, "validated by the source model"
    online = spec.name == "noise" and spec.online
    sigmas = [float(s) for s in spec.sigmas] if online else [None]
    n_crops = source.crop.per_image if source.crop else 1
    items = []
    for crop_index in range(n_crops):
        crop_key = make_key(source.name, relpath, f"c{crop_index}" if n_crops > 1 else "")
        for sigma in sigmas:
            key = crop_key if sigma is None else f"{crop_key}__s{sigma:g}".replace(".", "p")
            items.append(WorkItem(key=key, task=source.task, split=source.split, dataset=source.dataset_id,
                                  source=source.name, gt=ref, lq=None, files=files, crop_key=crop_key,
                                  degradation=None if online else spec, online_noise_sigma=sigma,
                                  **_crop_fields(source, crop_index)))
    return items


def expand_pair(source: SourceBase, gt_ref: str, lq_ref: str, relpath: str, files: dict[str, str]) -> list[WorkItem]:
    """Items for one captured (degraded, clean) pair: one per crop (same box in both images)."""
    assert source.degradation is None, "validated by the source model"
    n_crops = source.crop.per_image if source.crop else 1
    items = []
    for crop_index in range(n_crops):
        key = make_key(source.name, relpath, f"c{crop_index}" if n_crops > 1 else "")
        items.append(WorkItem(key=key, task=source.task, split=source.split, dataset=source.dataset_id,
                              source=source.name, gt=gt_ref, lq=lq_ref, files=files, crop_key=key,
                              **_crop_fields(source, crop_index)))
    return items


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (metadata must not depend on the OS)."""
    return path.relative_to(root).as_posix()
