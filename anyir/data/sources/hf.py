"""The ``hf`` source kind: a Hugging Face ``datasets`` dataset with image columns.

``path`` is a folder written by ``Dataset.save_to_disk`` (works offline); ``hub`` is a hub name,
loaded with ``load_dataset`` when the network (or the local cache) allows. ``lq_column`` None means
the rows hold clean images only, and the source's ``degradation`` makes the degraded input.
``where`` keeps only the rows whose columns equal the given values (e.g. ``{task: derain}`` to read
one task of a dataset that holds several, such as an ``anyir shards to-hf`` export).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import model_serializer, model_validator

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
    where: dict[str, str | int | float | bool | None] | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_where(self, handler):
        # Recipes written before 'where' existed keep their hash (the hash is over the dumped recipe).
        data = handler(self)
        if self.where is None:
            data.pop("where", None)
        return data

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
        wanted = [c for c in (self.gt_column, self.lq_column, self.key_column, *(self.where or {})) if c]
        missing = [c for c in wanted if c not in ds.column_names]
        if missing:
            result.rejections.append(self.reject(location, f"columns {missing} not found; the dataset has "
                                                  f"{ds.column_names}: set gt_column/lq_column/key_column/where"))
            return result
        keys = list(ds[self.key_column]) if self.key_column else [f"{i:07d}" for i in range(len(ds))]
        rows = self.matching_rows(ds)
        if not rows and len(ds):
            result.rejections.append(self.reject(location, f"no row of {len(ds)} has where={self.where}"))
        for row in rows:
            key = keys[row]
            gt = f"{kind}:{location}|{self.hf_split}|{row}|{self.gt_column}"
            files = {"gt": f"{location}[{row}].{self.gt_column}"}
            if self.lq_column is None:
                result.items += expand_clean(self, gt, str(key), files)
            else:
                lq = f"{kind}:{location}|{self.hf_split}|{row}|{self.lq_column}"
                files["lq"] = f"{location}[{row}].{self.lq_column}"
                result.items += expand_pair(self, gt, lq, str(key), files)
        return result

    def matching_rows(self, ds: datasets.Dataset) -> list[int]:
        """Indices of the rows that satisfy ``where`` (every row without it)."""
        if not self.where:
            return list(range(len(ds)))
        columns = {name: list(ds[name]) for name in self.where}
        return [row for row in range(len(ds)) if all(columns[c][row] == v for c, v in self.where.items())]


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
