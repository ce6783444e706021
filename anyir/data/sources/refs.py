"""Image references: short strings naming where a work item's image comes from.

``file:<absolute path>``, ``skimage:<sample name>`` (scikit-image's bundled images), and
``hf:<dataset dir>|<split>|<row>|<column>`` (a Hugging Face dataset saved with ``save_to_disk``),
``hfhub:<hub name>|<split>|<row>|<column>`` (loaded with ``load_dataset``).
Strings keep work items picklable and make the manifest's rejection list readable.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from anyir.data.images import ImageReadError, read_image, read_image_bytes, to_rgb8


def file_ref(path: Path) -> str:
    """Reference to an image file."""
    return f"file:{path}"


def load_ref(ref: str) -> tuple[np.ndarray, list[str]]:
    """Load a referenced image as HxWx3 uint8 plus the conversions applied. Raises ImageReadError."""
    kind, _, rest = ref.partition(":")
    if kind == "file":
        return read_image(rest)
    if kind == "skimage":
        return load_skimage(rest)
    if kind in ("hf", "hfhub"):
        return load_hf_cell(kind, *rest.split("|"))
    raise ImageReadError(f"{ref}: unknown image reference kind {kind!r} (expected file:, skimage:, hf:, hfhub:)")


SKIMAGE_GRAY = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock", "page", "text", "cell")


@functools.lru_cache(maxsize=32)
def load_skimage(name: str) -> tuple[np.ndarray, list[str]]:
    """A scikit-image bundled sample image by name (e.g. ``astronaut``, ``camera``) as RGB uint8."""
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None or not callable(loader):
        raise ImageReadError(f"skimage:{name}: no such scikit-image sample (try astronaut, coffee, camera)")
    try:
        result = loader()
        if isinstance(result, tuple):  # stereo_motorcycle: (left view, right view, disparity)
            result = result[0]
        arr = np.asarray(result)
    except Exception as exc:  # some samples need the optional 'pooch' download
        raise ImageReadError(f"skimage:{name}: cannot load ({type(exc).__name__}: {exc})") from exc
    if arr.dtype != np.uint8:
        raise ImageReadError(f"skimage:{name}: sample is {arr.dtype}, not uint8; pick another sample")
    mode = "L" if arr.ndim == 2 else {3: "RGB", 4: "RGBA"}[arr.shape[2]]
    rgb, conversions = to_rgb8(Image.fromarray(arr, mode=mode))
    rgb.setflags(write=False)  # cached and shared between items: nobody may modify it
    return rgb, conversions


@functools.lru_cache(maxsize=4)
def _open_hf(kind: str, location: str, split: str):
    from anyir.data.sources.hf import open_dataset

    return open_dataset(kind, location, split)


def load_hf_cell(kind: str, path: str, split: str, row: str, column: str) -> tuple[np.ndarray, list[str]]:
    """One image cell of a Hugging Face dataset (PIL image, or bytes/path dict)."""
    try:
        value = _open_hf(kind, path, split)[int(row)][column]
    except Exception as exc:
        raise ImageReadError(f"hf:{path}[{split}][{row}].{column}: cannot read ({type(exc).__name__}: {exc})") from exc
    if isinstance(value, dict):  # undecoded Image feature: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return read_image_bytes(value["bytes"], f"hf:{path}[{row}].{column}")
        return read_image(value["path"])
    if isinstance(value, Image.Image):
        return to_rgb8(value)
    raise ImageReadError(f"hf:{path}[{split}][{row}].{column}: not an image (got {type(value).__name__})")
