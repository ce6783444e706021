"""Synthetic source: clean images (scikit-image samples or a folder) plus a degradation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from anyir.data.sources.base import Rejection, Resolver, ScanResult, SourceBase, expand_clean, rel
from anyir.data.sources.paths import folder_not_found
from anyir.data.sources.refs import file_ref

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageSet(BaseModel):
    """Clean images: ``skimage: [names]`` or ``folder: path`` (with an optional glob ``pattern``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    skimage: list[str] | None = None
    folder: str | None = None
    pattern: str = "*"

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageSet:
        if (self.skimage is None) == (self.folder is None):
            raise ValueError("images: give exactly one of 'skimage: [names]' or 'folder: path'")
        return self


class SyntheticSource(SourceBase):
    """Clean images + a synthetic degradation (``degradation`` is required)."""

    kind: Literal["synthetic"] = "synthetic"
    images: ImageSet

    @model_validator(mode="after")
    def _needs_degradation(self) -> SyntheticSource:
        if self.degradation is None:
            raise ValueError(f"source {self.name!r}: a synthetic source needs a 'degradation'")
        return self

    def scan(self, resolve: Resolver) -> ScanResult:
        """List the clean images and expand them into work items (crops x sigmas)."""
        if self.images.skimage is not None:
            result = self.new_result(f"synthetic: skimage [{', '.join(sorted(self.images.skimage))}]")
            for name in sorted(self.images.skimage):
                result.items += expand_clean(self, f"skimage:{name}", name, {"gt": f"skimage:{name}"})
            return result
        folder = resolve(self.images.folder)
        result = self.new_result(f"synthetic: folder {self.images.folder} ({self.images.pattern})")
        for path in list_images(folder, self, result.rejections, self.images.pattern):
            relpath = rel(path, folder)
            result.items += expand_clean(self, file_ref(path), relpath, {"gt": relpath})
        return result


def list_images(folder: Path, source: SourceBase, rejections: list[Rejection], pattern: str = "*") -> list[Path]:
    """Image files in ``folder`` matching ``pattern``, sorted; a missing or empty folder is a rejection."""
    if not folder.is_dir():
        rejections.append(source.reject(str(folder), folder_not_found(folder)))
        return []
    paths = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        rejections.append(source.reject(str(folder), f"no image files matching {pattern!r} "
                                                     f"(looked for {', '.join(IMAGE_SUFFIXES)})"))
    return paths


__all__ = ["ImageSet", "SyntheticSource", "list_images"]
