"""Tune and check the leak audit's near-duplicate threshold on real photos.

    PYTHONPATH=$PWD python benchmarks/audit_threshold.py [--crops 50] [--edited 300] [--seed 0]

Photos: scikit-image's bundled samples (grey ones converted to RGB). Negatives: random square
crops (96 px to the full short side) of DIFFERENT photos, and, separately, pairs of disjoint crops
of the SAME photo (different pixels, often the same texture). Positives: a crop and an edited
copy of it (JPEG, 1-pixel shift, border cuts, 90 % crops, ...). For each threshold the script
prints the false-positive rate (negative pairs reported as near duplicates) and the miss rate per
edit, using the audit's own hashes and matching rule; docs/audit.md quotes its output.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from anyir.data.audit import DEFAULT_THRESHOLD, HASH_BITS, PREFIX_THRESHOLD, fingerprint
from anyir.data.sources.refs import load_skimage

# Not `cat`: it is the same photo as `chelsea`. stereo_motorcycle is its left view.
PHOTOS = ["astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
          "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket",
          "stereo_motorcycle", "text"]
THRESHOLDS = list(range(40, 85, 4))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((max(width, 1), max(height, 1)), Image.BICUBIC))


def crop_fraction(img: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """A crop keeping ``frac`` of each side at a random position."""
    h, w = img.shape[:2]
    ch, cw = round(h * frac), round(w * frac)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return img[top:top + ch, left:left + cw]


def border(img: np.ndarray, per_side: float) -> np.ndarray:
    h, w = img.shape[:2]
    dh, dw = round(h * per_side), round(w * per_side)
    return img[dh:h - dh, dw:w - dw]


def grey(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).convert("L").convert("RGB"))


# The edits the audit must catch (first group) and some beyond its target (second group).
EDITS = {
    "JPEG q75": lambda x, r: jpeg(x, 75),
    "JPEG q90": lambda x, r: jpeg(x, 90),
    "1-px shift": lambda x, r: x[1:, 1:],
    "resized to 50%": lambda x, r: resize(x, x.shape[1] // 2, x.shape[0] // 2),
    "grey copy": lambda x, r: grey(x),
    "border cut 2.5%/side": lambda x, r: border(x, 0.025),
    "border cut 5%/side": lambda x, r: border(x, 0.05),
    "90% crop": lambda x, r: crop_fraction(x, 0.9, r),
    "90% crop resized back": lambda x, r: resize(crop_fraction(x, 0.9, r), x.shape[1], x.shape[0]),
    "90% crop + JPEG q75": lambda x, r: jpeg(crop_fraction(x, 0.9, r), 75),
    "95% crop + JPEG q80": lambda x, r: jpeg(crop_fraction(x, 0.95, r), 80),
    "(beyond) border cut 10%/side": lambda x, r: border(x, 0.10),
    "(beyond) one side cut 10%": lambda x, r: x[:, round(0.1 * x.shape[1]):],
    "(beyond) 85% crop": lambda x, r: crop_fraction(x, 0.85, r),
    "(beyond) 80% crop": lambda x, r: crop_fraction(x, 0.8, r),
}


def random_crop(img: np.ndarray, rng: np.random.Generator, smallest: int = 96) -> tuple[np.ndarray, tuple]:
    h, w = img.shape[:2]
    size = int(rng.integers(min(smallest, h, w), min(h, w) + 1))
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return img[top:top + size, left:left + size], (top, left, size)


def words(fp_hash: bytes, views: int) -> tuple[np.ndarray, np.ndarray]:
    """(views, 4) uint64 words padded with zeros, and which rows are real."""
    w = np.frombuffer(fp_hash, dtype=">u8").astype(np.uint64).reshape(-1, 4)
    out = np.zeros((views, 4), np.uint64)
    out[:len(w)] = w
    valid = np.zeros(views, bool)
    valid[:len(w)] = True
    return out, valid


def pair_distances(hashes_a: list[bytes], hashes_b: list[bytes]) -> np.ndarray:
    """For aligned lists, the audit's near distance of each pair (HASH_BITS + 1 = no match possible)."""
    views = max(1, *(len(h) // 32 for h in hashes_a + hashes_b))
    out = np.full(len(hashes_a), HASH_BITS + 1, np.int64)
    for start in range(0, len(hashes_a), 4000):
        a = [words(h, views) for h in hashes_a[start:start + 4000]]
        b = [words(h, views) for h in hashes_b[start:start + 4000]]
        wa, va = np.stack([x[0] for x in a]), np.stack([x[1] for x in a])
        wb, vb = np.stack([x[0] for x in b]), np.stack([x[1] for x in b])
        best = out[start:start + 4000]
        for full, full_ok, views_w, views_ok in ((wa[:, 0], va[:, 0], wb, vb), (wb[:, 0], vb[:, 0], wa, va)):
            bits = np.bitwise_count(full[:, None, :] ^ views_w)  # (pairs, views, 4)
            ok = views_ok & full_ok[:, None] & (bits[..., 0] <= PREFIX_THRESHOLD)
            dist = np.where(ok, bits.sum(axis=2, dtype=np.int64), HASH_BITS + 1).min(axis=1)
            best[:] = np.minimum(best, dist)
    return out


def negative_distances(crops: list, owners: list[str], boxes: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Distances of all pairs of crops of different photos, and of disjoint crops of one photo."""
    hashes = [fingerprint(str(i), "t", "s", c).phash for i, c in enumerate(crops)]
    owners_arr = np.array(owners)
    ia, ib = np.triu_indices(len(crops), 1)
    different = owners_arr[ia] != owners_arr[ib]

    def disjoint(i: int, j: int) -> bool:
        (t1, l1, s1), (t2, l2, s2) = boxes[i], boxes[j]
        return t1 + s1 <= t2 or t2 + s2 <= t1 or l1 + s1 <= l2 or l2 + s2 <= l1

    same = [(i, j) for i, j in zip(ia[~different], ib[~different], strict=True) if disjoint(i, j)]
    return (pair_distances([hashes[i] for i in ia[different]], [hashes[i] for i in ib[different]]),
            pair_distances([hashes[i] for i, _ in same], [hashes[j] for _, j in same]))


def edit_distances(crops: list, count: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], int]:
    """Per edit, the distance between ``count`` random crops and their edited copies; and how many
    of the drawn crops were too smooth to hash (left out: they are compared by exact hash only)."""
    drawn = sorted(rng.choice(len(crops), min(count, len(crops)), replace=False).tolist())
    hashes = {i: fingerprint("o", "t", "s", crops[i]).phash for i in drawn}
    originals = [i for i in drawn if hashes[i]]
    out = {}
    for edit, apply in EDITS.items():
        edited = [fingerprint("e", "t", "s", apply(crops[i], rng)).phash for i in originals]
        out[edit] = pair_distances([hashes[i] for i in originals], edited)
    return out, len(drawn) - len(originals)


def contained_crop_distances(photos: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The demo's situation at its worst: a 256 px centre crop (test) and a 160 px crop lying inside
    it (train) of the same photo; 20 trials per photo."""
    out = []
    for img in photos.values():
        h, w = img.shape[:2]
        if min(h, w) < 256:
            continue
        top0, left0 = (h - 256) // 2, (w - 256) // 2
        centre = fingerprint("c", "t", "s", img[top0:top0 + 256, left0:left0 + 256]).phash
        for _ in range(20):
            top, left = top0 + int(rng.integers(0, 97)), left0 + int(rng.integers(0, 97))
            train = fingerprint("r", "t", "s", img[top:top + 160, left:left + 160]).phash
            out.append(pair_distances([centre], [train])[0])
    return np.array(out)


def stereo_distance() -> int:
    from skimage import data

    left, right = data.stereo_motorcycle()[:2]
    return int(pair_distances([fingerprint("l", "t", "s", left).phash], [fingerprint("r", "t", "s", right).phash])[0])


def row(label: str, cells: list) -> str:
    return label[:40].ljust(40) + "".join(f"{c:>7}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=50, help="random crops per photo (negative pairs)")
    parser.add_argument("--edited", type=int, default=300, help="crops edited for the miss rates")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    photos = {name: load_skimage(name)[0] for name in PHOTOS}
    crops, owners, boxes = [], [], []
    for name, img in photos.items():
        for _ in range(args.crops):
            crop, box = random_crop(img, rng)
            crops.append(crop)
            owners.append(name)
            boxes.append(box)
    smooth_crops = sum(not fingerprint("x", "t", "s", c).phash for c in crops)
    neg_d, same_d = negative_distances(crops, owners, boxes)
    edit_d, smooth_drawn = edit_distances(crops, args.edited, rng)
    contained_d = contained_crop_distances(photos, rng)
    stereo_d = stereo_distance()

    print(f"photos: {len(photos)}; crops: {len(crops)} ({args.crops} per photo, 96 px to full short side); "
          f"prefix threshold {PREFIX_THRESHOLD}/64, hash {HASH_BITS} bits; {time.perf_counter() - started:.0f} s")
    print(f"crops too smooth for a perceptual hash (exact hash only): {smooth_crops} of {len(crops)}; "
          f"of the {args.edited} crops drawn for editing: {smooth_drawn}, left out of the miss rates")
    print(f"negative pairs: {len(neg_d)} crops of different photos, {len(same_d)} disjoint crops of the same photo")
    print(f"closest negative: {neg_d.min()} bits (different photos), {same_d.min()} bits (same photo, disjoint)")
    print("different-photo pairs by distance: " + ", ".join(f"<={b}: {int((neg_d <= b).sum())}" for b in range(56, 137, 8))
          + f", no candidate: {int((neg_d > HASH_BITS).sum())}")
    print(row("threshold", THRESHOLDS))
    print(row("FP pairs, different photos", [int((neg_d <= t).sum()) for t in THRESHOLDS]))
    print(row("FP pairs, same photo disjoint", [int((same_d <= t).sum()) for t in THRESHOLDS]))
    for edit, d in edit_d.items():
        print(row(f"miss %, {edit}", [f"{100 * np.mean(d > t):.1f}" for t in THRESHOLDS]))
    print(row("found %, 160 px crop inside 256 px crop", [f"{100 * np.mean(contained_d <= t):.1f}" for t in THRESHOLDS]))
    t = DEFAULT_THRESHOLD
    fp = int((neg_d <= t).sum())
    bound = f"; 95% upper bound {3 / len(neg_d):.1e}" if fp == 0 else ""
    print(f"\nat the default threshold {t}: {fp} false pairs in {len(neg_d)} different-photo pairs "
          f"(rate {fp / len(neg_d):.1e}{bound}), {int((same_d <= t).sum())} in {len(same_d)} same-photo disjoint "
          f"pairs; stereo left vs right view: distance {stereo_d} ({'reported' if stereo_d <= t else 'not reported'})")
    print("misses at the default threshold: " + ", ".join(
        f"{edit} {100 * np.mean(d > t):.1f}% of {len(d)}" for edit, d in edit_d.items()))


if __name__ == "__main__":
    main()
