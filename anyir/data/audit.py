"""Leak audit: test samples whose clean image is a copy or a near copy of a training sample's.

Two checks on the clean (``gt``) image of every sample, test against train (all tasks):

* **exact**: equal sha256 of shape + pixel bytes;
* **near**: a perceptual hash. The image is reduced to a 128 px grey thumbnail; for the whole
  image and for 36 sub-windows (90-95 % of each side at several positions, 80-85 % centred) the
  256 lowest-frequency DCT coefficients of a 32 x 32 box-resampled window are thresholded at
  their median, giving one 256-bit hash per window (a DCT perceptual hash). Windows with little
  detail (uniform, or one gradient) get no hash: unrelated skies would match. A pair is a near
  duplicate when the whole-image hash of one is close to any window hash of the other (so one
  image may be a crop of the other, resized or not): Hamming distance <= ``PREFIX_THRESHOLD``
  on the 64 lowest frequencies and <= ``threshold`` on all 256 bits.

The search is indexed, not all pairs: multi-index hashing (Norouzi, Punjani and Fleet) on the
64-bit prefix, split in four 16-bit chunks. Two prefixes within distance 11 agree to within 2
bits on at least one chunk, so probing each chunk's table with every 16-bit value within 2 bits
of the query's chunk finds every candidate; candidates are then checked on all 256 bits.
Samples with identical pixels (the sigmas of one crop, the hazy variants of one clean photo)
are grouped first, so each distinct clean image is hashed into the index once.

Measured rates, the threshold choice and what is not caught: ``docs/audit.md``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

THUMB = 128  # grey thumbnail side; views are cut from it
GRID = 32  # side of the resampled view the DCT runs on
HASH_BITS = 256  # lowest-frequency AC coefficients kept per view (zig-zag order)
HASH_BYTES = HASH_BITS // 8
DETAIL_FROM = 35  # zig-zag index where "detail" starts: u + v >= 8, i.e. 4+ cycles per window
DETAIL_MIN = 3.0  # views with less detail than this (RMS, grey levels) get no hash (see view_hashes)
PREFIX_THRESHOLD = 11  # on the first 64 bits; 4 chunks probed within 2 bits find all up to 4 x 3 - 1
CHUNK_BITS = 16
DEFAULT_THRESHOLD = 56  # of 256 bits; 12+ below the closest different photos measured (docs/audit.md)
FINGERPRINTS_NAME = "fingerprints.parquet"  # sidecar file in a shard set folder


def _windows(size: float, steps: int) -> list[tuple[float, float, float]]:
    """Square windows (top, left, size) in relative units at ``steps`` x ``steps`` positions."""
    offsets = [0.5 * (1 - size)] if steps == 1 else [i * (1 - size) / (steps - 1) for i in range(steps)]
    return [(top, left, size) for top in offsets for left in offsets]


# View 0 is the whole image; the others let a crop of an image match that image.
VIEWS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0), *_windows(0.95, 3), *_windows(0.9, 5), *_windows(0.85, 1), *_windows(0.8, 1))
# Names the fingerprint recipe; bump the version when anything that changes the bits changes.
METHOD = f"sha256+dct{HASH_BITS}x{len(VIEWS)}views/v1"


@dataclass(frozen=True)
class Fingerprint:
    """What the audit keeps of one sample's clean image (about 1.2 kB; picklable).

    ``phash`` is the 256-bit view hashes concatenated (32 bytes each, big-endian): first the whole
    image, then the sub-windows with enough detail. Empty when the whole image is too smooth
    (uniform, or a plain gradient): such an image is only compared by ``exact``.
    """

    key: str
    task: str
    split: str
    exact: str
    phash: bytes

    def hashes(self) -> tuple[int, ...]:
        """The view hashes as 256-bit integers (whole image first)."""
        n = len(self.phash) // HASH_BYTES
        return tuple(int.from_bytes(self.phash[i * HASH_BYTES:(i + 1) * HASH_BYTES], "big") for i in range(n))


class AuditPair(BaseModel):
    """A test sample whose clean image duplicates a training sample's (``distance``: 0 for exact,
    else the Hamming distance of the closest view hashes, out of 256)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    test_key: str
    train_key: str
    kind: Literal["exact", "near"]
    distance: int = Field(ge=0, le=HASH_BITS)


class AuditReport(BaseModel):
    """The result of one audit; the shard set manifest stores it as ``audit``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str
    threshold: int
    n_test: int
    n_train: int
    exact: int = 0  # pairs
    near: int = 0  # pairs
    leaked: int = 0  # distinct test samples in at least one pair
    smooth_test: int = 0  # test samples with no perceptual hash (too smooth): compared by exact hash only
    smooth_train: int = 0  # the same for training samples
    pairs: list[AuditPair] = Field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when no test sample overlaps the training samples."""
        return not self.pairs

    def summary(self) -> str:
        """One line for the build log."""
        head = f"leak audit: {self.n_test} test x {self.n_train} train clean images"
        if self.smooth_test:
            head += f" ({self.smooth_test} test too smooth for the near check)"
        if self.clean:
            return f"{head}: no overlap"
        first = self.pairs[0]
        relation = (f"test {first.test_key} = train {first.train_key}" if first.kind == "exact"
                    else f"test {first.test_key} ~ train {first.train_key}, distance {first.distance}")
        return (f"{head}: {self.exact} exact, {self.near} near duplicate pair{_s(self.exact + self.near)} "
                f"in {self.leaked} test sample{_s(self.leaked)} (first: {relation})")


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# ---------------------------------------------------------------- fingerprints


def _zigzag(n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the first ``count`` AC coefficients of an n x n DCT, lowest first."""
    cells = sorted(((u, v) for u in range(n) for v in range(n)),
                   key=lambda c: (c[0] + c[1], c[0] if (c[0] + c[1]) % 2 else c[1]))
    cells = [c for c in cells if c != (0, 0)][:count]
    return np.array([c[0] for c in cells]), np.array([c[1] for c in cells])


def _box_matrix(start: float, length: float, n_out: int, n_in: int) -> np.ndarray:
    """Linear map averaging ``n_in`` samples over ``n_out`` equal cells of [start, start + length)."""
    edges = start + length * np.arange(n_out + 1) / n_out
    lo, hi = edges[:-1, None], edges[1:, None]
    pixels = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pixels + 1) - np.maximum(lo, pixels), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (row k = frequency k)."""
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_ZZ_ROWS, _ZZ_COLS = _zigzag(GRID, HASH_BITS)
_KEEP = int(max(_ZZ_ROWS.max(), _ZZ_COLS.max())) + 1  # DCT rows/cols needed (23)
# A view's DCT block is (DCT rows x box resampling of its rows) @ thumb @ (same for its columns)^T.
# Views share row and column windows, so the maps are built once per distinct (start, size).
_SPANS = sorted({(top, size) for top, _, size in VIEWS} | {(left, size) for _, left, size in VIEWS})
_SPAN_MAPS = np.stack([_dct_matrix(GRID)[:_KEEP] @ _box_matrix(start * THUMB, size * THUMB, GRID, THUMB)
                       for start, size in _SPANS])
_VIEW_ROWS = np.array([_SPANS.index((top, size)) for top, _, size in VIEWS])
_VIEW_COLS_T = np.ascontiguousarray(
    _SPAN_MAPS[[_SPANS.index((left, size)) for _, left, size in VIEWS]].transpose(0, 2, 1))


def _grey_thumbnail(image: np.ndarray) -> np.ndarray:
    """THUMB x THUMB luma (float64), squeezed to a square (views are in relative units).

    Large images are first shrunk by an integer factor (a fast box average) to a short side of
    THUMB..2*THUMB, then resampled with Lanczos. Not a box average all the way: that lets fine
    periodic texture (brick walls) alias into the low frequencies the hash keeps, and a 1-pixel
    shift then changes the hash.
    """
    pil = Image.fromarray(image)
    factor = min(image.shape[0], image.shape[1]) // THUMB
    if factor >= 2:
        pil = pil.reduce(factor)
    rgb = np.asarray(pil.resize((THUMB, THUMB), Image.LANCZOS), dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114  # ITU-R 601 luma


def view_hashes(image: np.ndarray) -> bytes:
    """The concatenated 256-bit hashes of an image's detailed views (whole image first; b"" if smooth)."""
    thumb = _grey_thumbnail(image)
    row_pass = _SPAN_MAPS @ thumb  # (spans, 23, THUMB): each row window resampled and transformed
    blocks = row_pass[_VIEW_ROWS] @ _VIEW_COLS_T  # (views, 23, 23)
    coeffs = blocks[:, _ZZ_ROWS, _ZZ_COLS]  # (views, 256), lowest frequencies first
    # Smooth views (nearly uniform, or one gradient or edge) share their few bits of structure with
    # too many unrelated images: the closest different photos measured were such. They get no hash.
    # Orthonormal DCT: sqrt(energy / pixels) is the RMS of that band in grey levels.
    detail = np.sqrt((coeffs[:, DETAIL_FROM:] ** 2).sum(axis=1) / GRID**2)
    if detail[0] < DETAIL_MIN:
        return b""
    keep = coeffs[detail >= DETAIL_MIN]
    middle = np.partition(keep, (HASH_BITS // 2 - 1, HASH_BITS // 2), axis=1)[:, HASH_BITS // 2 - 1:HASH_BITS // 2 + 1]
    bits = keep > middle.mean(axis=1, keepdims=True)  # above the median
    return np.packbits(bits, axis=1).tobytes()


def exact_hash(image: np.ndarray) -> str:
    """sha256 (hex) of the array's shape and pixel bytes."""
    digest = hashlib.sha256("x".join(map(str, image.shape)).encode() + b":")
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def fingerprint(key: str, task: str, split: str, image: np.ndarray) -> Fingerprint:
    """Fingerprint one sample's clean image (HxWx3 uint8). Raises ValueError for another array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"fingerprint({key!r}): image must be an HxWx3 uint8 array, got {got}")
    if min(image.shape[:2]) == 0:
        raise ValueError(f"fingerprint({key!r}): image is empty ({image.shape[1]}x{image.shape[0]})")
    return Fingerprint(key, task, split, exact_hash(image), view_hashes(image))


# ---------------------------------------------------------------- the index


def _words(hashes: bytes) -> np.ndarray:
    """(views, 4) uint64 words of concatenated 256-bit hashes; word 0 holds the 64 lowest frequencies."""
    return np.frombuffer(hashes, dtype=">u8").astype(np.uint64).reshape(-1, HASH_BITS // 64)


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """All ``bits``-bit values with at most ``radius`` bits set (XOR masks for probing a table)."""
    values = np.arange(1 << bits, dtype=np.uint32)
    return values[np.bitwise_count(values) <= radius]


def _chunk(prefixes: np.ndarray, shift: int) -> np.ndarray:
    return ((prefixes >> np.uint64(shift)) & np.uint64((1 << CHUNK_BITS) - 1)).astype(np.uint32)


class _ChunkIndex:
    """Multi-index hashing over the 64-bit prefixes of a set of view hashes: per 16-bit chunk, the
    rows sorted by chunk value and where each value's run starts (a bucket table)."""

    SHIFTS = tuple(range(64 - CHUNK_BITS, -1, -CHUNK_BITS))

    def __init__(self, words: np.ndarray):
        self.words = words
        self.prefixes = np.ascontiguousarray(words[:, 0])
        self.tables = []
        for shift in self.SHIFTS:
            chunk = _chunk(self.prefixes, shift)
            order = np.argsort(chunk, kind="stable").astype(np.int64)
            starts = np.searchsorted(chunk[order], np.arange((1 << CHUNK_BITS) + 1))
            self.tables.append((shift, starts, order))
        self.masks = _flip_masks(CHUNK_BITS, PREFIX_THRESHOLD // len(self.SHIFTS))

    def candidates(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query row, key row) of every pair that agrees within the radius on some chunk: a
        superset of the pairs within PREFIX_THRESHOLD (a pair may appear once per chunk)."""
        q_rows, k_rows = [], []
        for shift, starts, order in self.tables:
            probes = (_chunk(queries[:, 0], shift)[:, None] ^ self.masks[None, :]).ravel()
            lo = starts[probes]
            counts = starts[probes + 1] - lo
            total = int(counts.sum())
            if total == 0:
                continue
            run_starts = np.repeat(np.cumsum(counts) - counts, counts)
            q_rows.append(np.repeat(np.arange(len(probes)) // len(self.masks), counts))
            k_rows.append(order[np.repeat(lo, counts) + np.arange(total) - run_starts])
        if not q_rows:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(q_rows), np.concatenate(k_rows)

    def matches(self, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, key row, distance) of every pair within both thresholds (repeats possible)."""
        # Batches sized so that about two million candidates are checked at a time.
        expected = len(self.words) * len(self.SHIFTS) * len(self.masks) / (1 << CHUNK_BITS)
        batch = int(min(4096, max(1, 2_000_000 // max(expected, 1.0))))
        out = []
        for start in range(0, len(queries), batch):
            part = queries[start:start + batch]
            q, k = self.candidates(part)
            close = np.bitwise_count(part[q, 0] ^ self.prefixes[k]) <= PREFIX_THRESHOLD
            q, k = q[close], k[close]
            dist = np.bitwise_count(part[q] ^ self.words[k]).sum(axis=1, dtype=np.int64)
            ok = dist <= threshold
            out.append((q[ok] + start, k[ok], dist[ok]))
        if not out:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
        q, k, d = (np.concatenate(parts) for parts in zip(*out, strict=True))
        return q, k, d


def _stack_views(hashes: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """All view words of several images and, per row, the image it belongs to."""
    words = [_words(h) for h in hashes]
    owners = np.repeat(np.arange(len(words)), [len(w) for w in words])
    return (np.concatenate(words) if words else np.empty((0, 4), np.uint64)), owners


def near_duplicates(test_hashes: list[bytes], train_hashes: list[bytes], threshold: int) -> dict[tuple[int, int], int]:
    """{(test index, train index): distance} of near duplicates between two lists of ``phash`` values.

    Both directions: the whole test image against every train view (the test image is a crop of
    the train image or equal to it), and every test view against the whole train image.
    """
    best: dict[tuple[int, int], int] = {}
    for queries_of, keys_of, flip in ((test_hashes, train_hashes, False), (train_hashes, test_hashes, True)):
        query_ids = [i for i, h in enumerate(queries_of) if h]
        key_words, key_owner = _stack_views([h for h in keys_of if h])
        key_ids = np.array([i for i, h in enumerate(keys_of) if h], dtype=np.int64)
        if not query_ids or len(key_words) == 0:
            continue
        queries = np.stack([_words(queries_of[i])[0] for i in query_ids])
        q, k, dist = _ChunkIndex(key_words).matches(queries, threshold)
        owners = key_ids[key_owner[k]].tolist()
        for qi, ki, d in zip(np.array(query_ids)[q].tolist(), owners, dist.tolist(), strict=True):
            pair = (ki, qi) if flip else (qi, ki)
            best[pair] = min(d, best.get(pair, d))
    return best


# ---------------------------------------------------------------- audits


def _groups(fps: Iterable[Fingerprint]) -> dict[str, list[Fingerprint]]:
    """Fingerprints grouped by exact hash (same pixels), in a deterministic order."""
    groups: dict[str, list[Fingerprint]] = {}
    for fp in sorted(fps, key=lambda f: (f.exact, f.key)):
        groups.setdefault(fp.exact, []).append(fp)
    return groups


def _pair_order(pair: AuditPair) -> tuple:
    return pair.kind != "exact", pair.distance, pair.test_key, pair.train_key


def audit(test: Sequence[Fingerprint], train: Sequence[Fingerprint], threshold: int = DEFAULT_THRESHOLD) -> AuditReport:
    """Every test sample against every training sample: exact and near duplicate pairs.

    Pairs come sorted (exact first, then by distance and keys), so the report is deterministic.
    """
    if not 0 <= threshold <= HASH_BITS:
        raise ValueError(f"audit: threshold must be 0..{HASH_BITS} bits, got {threshold}")
    test_groups, train_groups = _groups(test), _groups(train)
    pairs = [AuditPair(test_key=t.key, train_key=r.key, kind="exact", distance=0)
             for exact, members in test_groups.items() if exact in train_groups
             for t in members for r in train_groups[exact]]
    test_list, train_list = list(test_groups.values()), list(train_groups.values())
    near = near_duplicates([g[0].phash for g in test_list], [g[0].phash for g in train_list], threshold)
    for (ti, ri), dist in near.items():
        if test_list[ti][0].exact != train_list[ri][0].exact:
            pairs += [AuditPair(test_key=t.key, train_key=r.key, kind="near", distance=dist)
                      for t in test_list[ti] for r in train_list[ri]]
    pairs.sort(key=_pair_order)
    n_exact = sum(p.kind == "exact" for p in pairs)
    return AuditReport(method=METHOD, threshold=threshold, n_test=len(test), n_train=len(train), exact=n_exact,
                       near=len(pairs) - n_exact, leaked=len({p.test_key for p in pairs}),
                       smooth_test=sum(not f.phash for f in test), smooth_train=sum(not f.phash for f in train),
                       pairs=pairs)


def audit_set(fps: Sequence[Fingerprint], threshold: int = DEFAULT_THRESHOLD) -> AuditReport:
    """Audit one shard set: its test samples against its training samples."""
    return audit([f for f in fps if f.split == "test"], [f for f in fps if f.split == "train"], threshold)


def _labelled(fps: Sequence[Fingerprint], label: str, split: str) -> list[Fingerprint]:
    return [Fingerprint(f"{label}:{f.key}", f.task, f.split, f.exact, f.phash) for f in fps if f.split == split]


def audit_sets(fps_a: Sequence[Fingerprint], fps_b: Sequence[Fingerprint], threshold: int = DEFAULT_THRESHOLD,
               labels: tuple[str, str] = ("a", "b")) -> AuditReport:
    """Audit two sets built separately: test of A against train of B, and test of B against train of A.

    Keys are prefixed ``<label>:`` (the two sets may use the same keys). Pairs inside one set are
    left out: each set's own manifest holds those.
    """
    (la, lb) = labels
    first = audit(_labelled(fps_a, la, "test"), _labelled(fps_b, lb, "train"), threshold)
    second = audit(_labelled(fps_b, lb, "test"), _labelled(fps_a, la, "train"), threshold)
    pairs = sorted(first.pairs + second.pairs, key=_pair_order)
    return AuditReport(method=METHOD, threshold=threshold, n_test=first.n_test + second.n_test,
                       n_train=first.n_train + second.n_train, exact=first.exact + second.exact,
                       near=first.near + second.near, leaked=first.leaked + second.leaked,
                       smooth_test=first.smooth_test + second.smooth_test,
                       smooth_train=first.smooth_train + second.smooth_train, pairs=pairs)


# ---------------------------------------------------------------- the sidecar file


def write_fingerprints(path: str | Path, fps: Iterable[Fingerprint]) -> Path:
    """Write fingerprints as Parquet, sorted by (split, key): the same set gives the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(fps, key=lambda f: (f.split, f.key))
    table = pa.table({
        "key": pa.array([f.key for f in rows], pa.string()),
        "task": pa.array([f.task for f in rows], pa.string()),
        "split": pa.array([f.split for f in rows], pa.string()),
        "exact": pa.array([f.exact for f in rows], pa.string()),
        "phash": pa.array([f.phash for f in rows], pa.binary()),
    }).replace_schema_metadata({"anyir.audit.method": METHOD})
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd", use_dictionary=["task", "split"])
    os.replace(tmp, path)
    return path


def read_fingerprints(path: str | Path) -> list[Fingerprint]:
    """Read a fingerprint file. Raises ValueError (one line) for a missing, foreign or stale file."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no fingerprint file; rebuild the shard set with this anyir version")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"{path}: cannot read fingerprints ({type(exc).__name__}: {reason}); rebuild the shard set") from exc
    method = (table.schema.metadata or {}).get(b"anyir.audit.method", b"").decode()
    if method != METHOD:
        raise ValueError(f"{path}: fingerprints made by method {method or 'unknown'!r}, this anyir uses "
                         f"{METHOD!r}; rebuild the shard set")
    names = ("key", "task", "split", "exact", "phash")
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: fingerprint file lacks columns {missing}; rebuild the shard set")
    columns = {name: table.column(name).to_pylist() for name in names}
    return [Fingerprint(*row) for row in zip(*columns.values(), strict=True)]


__all__ = ["DEFAULT_THRESHOLD", "FINGERPRINTS_NAME", "METHOD", "AuditPair", "AuditReport", "Fingerprint", "audit",
           "audit_set", "audit_sets", "exact_hash", "fingerprint", "near_duplicates", "read_fingerprints",
           "view_hashes", "write_fingerprints"]
