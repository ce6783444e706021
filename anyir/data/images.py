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


def to_rgb8(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Convert a PIL image of any mode to HxWx3 uint8; return the array and the conversions done."""
    conversions: list[str] = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        arr = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        conversions.append(f"{mode}->L (16-bit scaled to 8-bit)")
        img = Image.fromarray(arr, mode="L")
        mode = "L"
    if mode == "RGBA" or mode == "LA" or (mode == "P" and "transparency" in img.info):
        # Composite on white: the usual meaning of a transparent background in photos/logos.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
        conversions.append(f"{mode}->RGB (alpha composited on white)")
    elif mode != "RGB":
        img = img.convert("RGB")
        conversions.append(f"{mode}->RGB")
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


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (PNG/JPEG/...) to RGB uint8."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr, _ = to_rgb8(img)
            return arr
    except Exception as exc:
        raise ImageReadError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def encode_png(arr: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode an HxWx3 uint8 array as PNG. Deterministic for a given array and level."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"encode_png expects HxWx3 uint8, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
