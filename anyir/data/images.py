"""Image decoding/encoding shared by the shard writer, the stream, evaluation and restore.

Every image inside anyir is an HxWx3 uint8 RGB numpy array. Inputs in other modes are
converted, and each conversion is reported so callers can record it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the cause."""


ALPHA_DROPPED = "alpha dropped, as PIL convert('RGB'); reference loaders do the same"


def to_rgb8(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Convert a PIL image of any mode to HxWx3 uint8; return the array and the conversions done.

    Transparency is DROPPED, not composited: the colour channels are kept as stored, exactly what
    ``Image.convert("RGB")`` gives, because the PromptIR/AdaIR/MoCE-IR loaders read every image that
    way and a benchmark must see the pixels they see (compositing on white changed pixels by up to
    251 levels). 16-bit images are scaled to 8 bits (``convert`` would clip them to 255).
    """
    conversions: list[str] = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        arr = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        conversions.append(f"{mode}->L (16-bit scaled to 8-bit)")
        img = Image.fromarray(arr, mode="L")
        mode = "L"
    if mode != "RGB":
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
        img = img.convert("RGB")
        conversions.append(f"{mode}->RGB ({ALPHA_DROPPED})" if has_alpha else f"{mode}->RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(arr), conversions


def read_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read any PIL-readable file as RGB uint8. Raises ImageReadError naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except Exception as exc:  # PIL raises many types for truncated/corrupt data
        raise ImageReadError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def read_image_bytes(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, list[str]]:
    """Decode encoded image bytes (PNG/JPEG/...) to RGB uint8 plus the conversions applied."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return to_rgb8(img)
    except Exception as exc:
        raise ImageReadError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (PNG/JPEG/...) to RGB uint8 (shard members: always RGB already)."""
    return read_image_bytes(data, name)[0]


def encode_png(arr: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode an HxWx3 uint8 array as PNG. Deterministic for a given array and level."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"encode_png expects HxWx3 uint8, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
