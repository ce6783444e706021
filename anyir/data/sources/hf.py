"""The ``hf`` source kind: a Hugging Face ``datasets`` dataset with image columns.

``path`` is a folder written by ``Dataset.save_to_disk`` (works offline); ``hub`` is a hub name,
loaded with ``load_dataset`` when the network (or the local cache) allows. ``lq_column`` None means
the rows hold clean images only, and the source's ``degradation`` makes the degraded input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator

from anyir.data.sources.base import Resolver, ScanResult, SourceBase, expand_clean, expand_pair
from anyir.data.sources.paths import folder_not_found

if TYPE_CHECKING:  # datasets is slow to import; only load it when a hf source is scanned
    import datasets


class HFSource(SourceBase):
    """Rows of a Hugging Face dataset; column names are configurable."""

    kind: Literal["hf"] = "hf"
    path: str | None = None
    hub: str | None = None
    hf_split: str = "train"
    gt_column: str = "clean"
    lq_column: str | None = "degraded"
    key_column: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> HFSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError(f"source {self.name!r}: give exactly one of 'path' (save_to_disk folder) or 'hub'")
        if (self.lq_column is None) == (self.degradation is None):
            raise ValueError(f"source {self.name!r}: set 'lq_column' for real pairs, or 'lq_column: null' "
                             "plus a 'degradation' for clean-only rows")
        return self

    def scan(self, resolve: Resolver) -> ScanResult:
        """One item per row (times crops / sigmas); a missing column or dataset is a rejection."""
        location = str(resolve(self.path)) if self.path else self.hub
        kind = "hf" if self.path else "hfhub"
        how = f"save_to_disk folder {self.path}" if self.path else f"hub dataset {self.hub}"
        degraded = self.lq_column or f"synthetic {self.degradation.name}"
        result = self.new_result(f"hf {how} [{self.hf_split}]: {self.gt_column} vs {degraded}")
        if self.path and not Path(location).exists():
            reason = folder_not_found(Path(location), "a Dataset.save_to_disk folder")
            result.rejections.append(self.reject(location, reason))
            return result
        try:
            ds = open_dataset(kind, location, self.hf_split)
        except Exception as exc:
            result.rejections.append(self.reject(location, f"cannot open dataset ({type(exc).__name__}: {exc})"))
            return result
        wanted = [c for c in (self.gt_column, self.lq_column, self.key_column) if c]
        missing = [c for c in wanted if c not in ds.column_names]
        if missing:
            result.rejections.append(self.reject(location, f"columns {missing} not found; the dataset has "
                                                  f"{ds.column_names}: set gt_column/lq_column/key_column"))
            return result
        keys = ds[self.key_column] if self.key_column else [f"{i:07d}" for i in range(len(ds))]
        for row, key in enumerate(keys):
            gt = f"{kind}:{location}|{self.hf_split}|{row}|{self.gt_column}"
            files = {"gt": f"{location}[{row}].{self.gt_column}"}
            if self.lq_column is None:
                result.items += expand_clean(self, gt, str(key), files)
            else:
                lq = f"{kind}:{location}|{self.hf_split}|{row}|{self.lq_column}"
                files["lq"] = f"{location}[{row}].{self.lq_column}"
                result.items += expand_pair(self, gt, lq, str(key), files)
        return result


def open_dataset(kind: str, location: str, split: str) -> datasets.Dataset:
    """A datasets.Dataset from a save_to_disk folder (kind 'hf') or a hub name (kind 'hfhub')."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    if kind == "hf":
        ds = load_from_disk(location)
        if isinstance(ds, DatasetDict):
            if split not in ds:
                raise KeyError(f"split {split!r} not in {sorted(ds)}")
            ds = ds[split]
        return ds
    return load_dataset(location, split=split)
