"""How image members are stored in shards, and how to decode them: one home for the formats.

A member is named ``<key>.<role>.<format>`` with role ``gt`` (clean) or ``lq`` (degraded); the
format tells a reader, anyir's or a foreign one, how to turn the bytes into an HxWx3 uint8 array.
"""

from __future__ import annotations

import numpy as np

from anyir.data.images import decode_image, encode_png

# format name -> what it is (the member extension is the format name)
IMAGE_FORMATS: dict[str, str] = {
    "png": "PNG, RGB 8-bit (any zlib level): decode with PIL or any PNG reader",
}


def encode(image: np.ndarray, fmt: str, level: int = 1) -> bytes:
    """Encode an HxWx3 uint8 image in ``fmt``; deterministic for the same array and settings."""
    if fmt == "png":
        return encode_png(image, level)
    raise ValueError(f"image format {fmt!r} is not one of {sorted(IMAGE_FORMATS)}")


def decode(member: str, data: bytes | memoryview, where: str = "<bytes>") -> np.ndarray:
    """Decode the member named ``<role>.<format>`` to HxWx3 uint8. Raises ImageReadError naming ``where``."""
    fmt = member.rsplit(".", 1)[-1]
    if fmt == "png":
        return decode_image(bytes(data), where)
    raise ValueError(f"{where}: image format {fmt!r} is not one of {sorted(IMAGE_FORMATS)}")
