"""Sources: one reader per dataset layout, a generic paired folder, Hugging Face datasets, and
synthetic degradations of clean images. Each source model has ``scan(resolve) -> ScanResult``."""

from typing import Annotated

from pydantic import Field

from anyir.data.sources.base import (
    CropSpec,
    Rejection,
    ScanResult,
    SourceBase,
    WorkItem,
    dedupe_rejections,
    item_rejection,
)
from anyir.data.sources.hf import HFSource
from anyir.data.sources.layout_source import LayoutSource
from anyir.data.sources.paired import PairedFolderSource
from anyir.data.sources.synthetic import ImageSet, SyntheticSource

Source = Annotated[SyntheticSource | LayoutSource | PairedFolderSource | HFSource, Field(discriminator="kind")]

__all__ = ["CropSpec", "HFSource", "ImageSet", "LayoutSource", "PairedFolderSource", "Rejection", "ScanResult",
           "Source", "SourceBase", "SyntheticSource", "WorkItem", "dedupe_rejections", "item_rejection"]
