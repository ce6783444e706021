"""What every source produces: work items (one future sample each) and rejections.

Scanning a source only lists files and pairs them by name; images are read later, in the
shard writer's workers, so a scan of 70k files stays fast and cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from anyir.degrade.specs import DegradationSpec

Resolver = Callable[[str], Path]  # expands ${data_root} and recipe-relative paths (Recipe.resolve)


@dataclass(frozen=True)
class Rejection:
    """An input that did not become a sample, and why.

    ``crop_index``/``sigma`` are set only on the rejection of one work item (:func:`item_rejection`):
    they say which of the file's samples was lost, so :func:`dedupe_rejections` can fold the samples
    of one bad file into one entry. They are not part of the manifest record (:meth:`to_dict`).
    """

    source: str
    task: str
    split: str
    file: str
    reason: str
    crop_index: int | None = None
    sigma: float | None = None

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

    @property
    def file_id(self) -> str:
        """The input file(s) this item is made from, as written in rejections; every crop and
        sigma of one file (or pair) shares it."""
        return ", ".join(self.files.values())


@dataclass
class ScanResult:
    """What a source scan found: work items, rejected inputs, notes, and which arrangement was read.

    ``notes`` are things kept or skipped on purpose that a user should see: inputs paired under a
    lenient rule, folders under a layout's root that the layout does not read ("ignored folder").
    ``variant`` names what was read (the matched layout variant, "paired folders (same_name)", ...);
    empty when nothing matched. A scan that yields no items is an error for the build unless the
    source is ``optional`` (:meth:`empty_error`).
    """

    source: str = ""
    task: str = ""
    split: str = ""
    optional: bool = False
    variant: str = ""
    items: list[WorkItem] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[Rejection] = field(default_factory=list)

    def empty_error(self) -> str | None:
        """One line for a required source that found nothing (None when it found items or is optional)."""
        if self.items or self.optional:
            return None
        first = self.rejections[0] if self.rejections else None
        why = f"{first.file}: {first.reason}" if first else "no inputs found"
        return (f"source {self.source!r} ({self.task}/{self.split}) found no inputs: {why}. "
                "Fix its path, or mark it 'optional: true' to build without it")

    def summary(self) -> dict[str, object]:
        """Counts for a plan or a manifest: files (pairs or clean images) found, samples they expand
        to (crops x sigmas, before ``max_samples``), rejections, notes, the variant read."""
        return {"source": self.source, "task": self.task, "split": self.split, "variant": self.variant or "none",
                "inputs": len({item.file_id for item in self.items}), "samples": len(self.items),
                "rejections": len(self.rejections), "notes": len(self.notes), "optional": self.optional}


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
    # An optional source may find nothing (a dataset not downloaded yet); any other source that
    # finds nothing fails the build. It never changes a sample, so it is left out of the recipe hash.
    optional: bool = Field(default=False, exclude=True)

    @property
    def dataset_id(self) -> str:
        """The dataset id written into metadata: ``dataset``, else the source name."""
        return self.dataset or self.name

    def new_result(self, variant: str = "") -> ScanResult:
        """An empty :class:`ScanResult` labelled with this source."""
        return ScanResult(source=self.name, task=self.task, split=self.split, optional=self.optional, variant=variant)

    def reject(self, file: str, reason: str) -> Rejection:
        """A rejection (or note) of ``file`` by this source."""
        return Rejection(self.name, self.task, self.split, file, reason)


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


def item_rejection(item: WorkItem, reason: str) -> Rejection:
    """The rejection of one work item that could not become a sample (made in the build's workers),
    tagged with its crop and sigma for :func:`dedupe_rejections`."""
    return Rejection(item.source, item.task, item.split, item.file_id, reason,
                     crop_index=item.crop_index if item.crop_size is not None else None,
                     sigma=item.online_noise_sigma)


def dedupe_rejections(rejections: Iterable[Rejection]) -> list[Rejection]:
    """One entry per (source, task, split, file, reason), in first-seen order.

    A bad file expands to several work items (crops x online-noise sigmas), each rejected on its
    own; they collapse into one rejection whose reason says how many samples were lost and which,
    e.g. ``cannot decode image (...) (3 samples: sigmas 15/25/50)``.
    """
    groups: dict[tuple[str, str, str, str, str], list[Rejection]] = {}
    for rejection in rejections:
        key = (rejection.source, rejection.task, rejection.split, rejection.file, rejection.reason)
        groups.setdefault(key, []).append(rejection)
    merged = []
    for (source, task, split, file, reason), group in groups.items():
        if len(group) > 1:
            reason = f"{reason} ({lost_samples(group)})"
        merged.append(Rejection(source, task, split, file, reason))
    return merged


def lost_samples(group: list[Rejection]) -> str:
    """``3 samples: sigmas 15/25/50``, ``4 samples: crops 0/1 x sigmas 15/50``; ``reported 2 times``
    for repeats that are not tagged as samples (scan-level rejections)."""
    crops = sorted({r.crop_index for r in group if r.crop_index is not None})
    sigmas = sorted({r.sigma for r in group if r.sigma is not None})
    if not crops and not sigmas:
        return f"reported {len(group)} times"
    parts = []
    if len(crops) > 1:
        parts.append("crops " + "/".join(str(c) for c in crops))
    if sigmas:
        parts.append(("sigma " if len(sigmas) == 1 else "sigmas ") + "/".join(f"{s:g}" for s in sigmas))
    return f"{len(group)} samples" + (": " + " x ".join(parts) if parts else "")
