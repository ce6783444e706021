"""Train images stored as overlapping patches: where they are cut, how they are named and counted.

Opt-in (recipe ``encoding.patch: {size, stride}``; train split only, test images stay whole).
A patch bounds what one training sample must decode: with a compressed member format (PNG) a
sample costs one patch decode instead of one photo decode. With raw ``npy`` members decoding is
already free at any size, so the shipped recipes store whole images and patches only cost disk
(measured trade-offs: docs/benchmarks.md).

Geometry (:func:`patch_boxes`): per axis, origins ``0, stride, 2 stride, ...`` while the patch
fits, plus one patch flush with the far edge when the last one stops short; a side shorter than
``size`` gives one patch of the whole side. **Coverage**: every square crop of side
``c <= size - stride + 1`` that lies inside the image lies inside at least one patch, so the
stream can still reach every crop position of the source image (:func:`max_full_coverage_crop`).
Disk grows by about ``(size / stride)^2`` for images much larger than a patch (less for small
ones): :func:`overlap_factor` gives the exact factor for one image size.

Naming and order: a patch is a sample keyed ``<item key>__p<k>`` (``k`` = row-major index from 0,
no dots); its json repeats the item's metadata plus ``item`` (the source sample's key) and
``patch`` ``{index, count, top, left, source_height, source_width}``, with ``width``/``height``
the patch's own size. The patches of one item are consecutive in a tar, in index order.

Counting: a patch is a *sample* in the tar (``ShardInfo.samples``, the reader's count), but
mixtures, balances and epochs count *items* (source samples: one photo pair, one online-noise
sigma of one clean image), stored as ``ShardInfo.items`` / ``TaskSplit.items``. The stream visits
items; each visit reads one patch of the item, chosen by a seeded draw (:func:`choose_patch`).
So one epoch is one visit per source sample on average, exactly as without patches, and a large
photo weighs no more than a small one inside its task.
"""

from __future__ import annotations

from collections.abc import Sequence

from anyir.degrade.seeding import seed_from_key

PATCH_MARK = "__p"


def patch_origins(length: int, size: int, stride: int) -> list[int]:
    """Origins of the patches along one axis of ``length`` pixels (see the module docs)."""
    if size < 1 or not 1 <= stride <= size:
        raise ValueError(f"patch size={size}, stride={stride}: need size >= 1 and 1 <= stride <= size")
    if length <= size:
        return [0]
    origins = list(range(0, length - size + 1, stride))
    if origins[-1] != length - size:
        origins.append(length - size)
    return origins


def patch_boxes(height: int, width: int, size: int, stride: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of every patch of an image, row-major."""
    rows, cols = patch_origins(height, size, stride), patch_origins(width, size, stride)
    return [(top, left, min(size, height), min(size, width)) for top in rows for left in cols]


def max_full_coverage_crop(size: int, stride: int) -> int:
    """The largest crop side for which every crop position of the source lies inside some patch."""
    return size - stride + 1


def overlap_factor(height: int, width: int, size: int, stride: int) -> float:
    """Stored pixels / source pixels for one image (the disk multiplier of the patch cut)."""
    return sum(h * w for _, _, h, w in patch_boxes(height, width, size, stride)) / (height * width)


def patch_key(item_key: str, index: int) -> str:
    """The sample key of patch ``index`` of the item keyed ``item_key``."""
    return f"{item_key}{PATCH_MARK}{index}"


def item_ranges(item_keys: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) sample offsets of each item in a tar, from its samples' ``item`` keys in stored
    order (consecutive samples of the same item form one range)."""
    ranges: list[tuple[int, int]] = []
    for i, item in enumerate(item_keys):
        if ranges and item_keys[ranges[-1][0]] == item:
            ranges[-1] = (ranges[-1][0], i + 1)
        else:
            ranges.append((i, i + 1))
    return ranges


def choose_patch(count: int, *seed_parts: object) -> int:
    """The patch (0..count-1) one visit reads, from the visit's seed parts (seed, epoch, task, position)."""
    return 0 if count <= 1 else seed_from_key("stream-patch", *seed_parts) % count
