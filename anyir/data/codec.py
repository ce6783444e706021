"""How image members are stored in shards, and how to decode them: one home for the formats.

A member is named ``<key>.<role>.<format>`` with role ``gt`` (clean) or ``lq`` (degraded); the
format tells a reader, anyir's or a foreign one, how to turn the bytes into an HxWx3 uint8 array:

* ``png``: RGB 8-bit PNG (any zlib level). Small on disk, but decoding costs time in proportion
  to the whole picture (~26 ms for a 1280x720 frame on an idle core), whatever crop is used.
* ``npy``: the raw HxWx3 uint8 array in NumPy's ``.npy`` format (version 1.0, C order, no
  pickle). Decoding is a header parse and a view on the bytes, no copy: a 128 px crop of a
  1280x720 frame costs the crop, not the frame. About 2x the disk of PNG for natural photos
  (numbers in docs/benchmarks.md). Foreign readers:
  ``np.load(io.BytesIO(data), allow_pickle=False)``; webdataset decodes ``.npy`` members the same
  way (``.decode()`` with ``only=["gt.npy", "lq.npy"]`` so nothing else is touched).

Both encodings are deterministic: the same array and settings give the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.lib import format as npy_format

from anyir.data.images import ImageReadError, decode_image, encode_png

# format name -> what it is (the member extension is the format name)
IMAGE_FORMATS: dict[str, str] = {
    "png": "PNG, RGB 8-bit (any zlib level): decode with PIL or any PNG reader",
    "npy": "NumPy .npy v1.0, HxWx3 uint8, C order: np.load(io.BytesIO(data), allow_pickle=False)",
}


def encode(image: np.ndarray, fmt: str, level: int = 1) -> bytes:
    """Encode an HxWx3 uint8 image in ``fmt``; deterministic for the same array and settings.

    ``level`` is PNG's zlib level (0-9); ``npy`` is stored raw and ignores it.
    """
    if fmt == "png":
        return encode_png(image, level)
    if fmt == "npy":
        return encode_npy(image)
    raise ValueError(f"image format {fmt!r} is not one of {sorted(IMAGE_FORMATS)}")


def decode(member: str, data: bytes | memoryview, where: str = "<bytes>") -> np.ndarray:
    """Decode the member named ``<role>.<format>`` to HxWx3 uint8. Raises ImageReadError naming ``where``.

    An ``npy`` member comes back as a read-only view of ``data`` (no copy): copy it before
    writing into it.
    """
    fmt = member.rsplit(".", 1)[-1]
    if fmt == "png":
        return decode_image(bytes(data), where)
    if fmt == "npy":
        return decode_npy(data, where)
    raise ValueError(f"{where}: image format {fmt!r} is not one of {sorted(IMAGE_FORMATS)}")


def encode_npy(image: np.ndarray) -> bytes:
    """The ``.npy`` bytes of an HxWx3 uint8 image (format version 1.0, C order, no pickle)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"encode_npy expects HxWx3 uint8, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    npy_format.write_array(buf, np.ascontiguousarray(image), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


_HEADERS: dict[bytes, tuple[tuple[int, ...], bool, np.dtype, int]] = {}  # header bytes -> parsed (bounded)


def _npy_header(view: memoryview, where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, data offset) of ``.npy`` bytes; ImageReadError when unreadable.

    Parsed headers are remembered by their bytes: parsing one (NumPy's reader, ``ast.literal_eval``)
    costs ~0.2 ms, more than the rest of a training sample, and a data set has few distinct sizes.
    """
    if len(view) >= 10 and view[6] == 1:  # version 1.0: 2-byte little-endian header length
        end = 10 + (view[8] | view[9] << 8)
        if (cached := _HEADERS.get(view[:end].tobytes())) is not None:
            return cached
    head = io.BytesIO(view[:4096].tobytes())  # a v1.0 header is at most 65535 bytes; ours are 128
    try:
        version = npy_format.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(head)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(head)
        else:
            raise ValueError(f"npy version {version} is not supported")
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError ... on damage
        raise ImageReadError(f"{where}: not a readable .npy image ({type(exc).__name__}: {exc}); "
                             "rebuild the shard set") from None
    parsed = (shape, fortran, dtype, head.tell())
    if version == (1, 0):
        if len(_HEADERS) >= 4096:
            _HEADERS.clear()
        _HEADERS[view[: head.tell()].tobytes()] = parsed
    return parsed


def decode_npy(data: bytes | memoryview, where: str = "<bytes>") -> np.ndarray:
    """A read-only HxWx3 uint8 view of ``.npy`` bytes; ImageReadError when they are not exactly that.

    Only the header is parsed (NumPy's own reader, no pickle); the pixels are not copied, so the
    cost does not depend on the image size.
    """
    view = memoryview(data).cast("B")
    shape, fortran, dtype, offset = _npy_header(view, where)
    if dtype != np.uint8 or fortran or len(shape) != 3 or shape[2] != 3:
        raise ImageReadError(f"{where}: .npy holds {dtype} {'F' if fortran else 'C'}-order {shape}, "
                             "not an HxWx3 uint8 C-order image; rebuild the shard set")
    size = shape[0] * shape[1] * 3
    if len(view) != offset + size:
        raise ImageReadError(f"{where}: .npy of shape {shape} needs {offset + size} bytes, has {len(view)} "
                             "(truncated or padded); rebuild the shard set")
    array = np.frombuffer(view, dtype=np.uint8, count=size, offset=offset).reshape(shape)
    array.flags.writeable = False
    return array
