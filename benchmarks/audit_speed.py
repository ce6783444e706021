"""Leak audit speed: the index against all pairs on a synthetic case, and the fingerprint cost.

    PYTHONPATH=$PWD python benchmarks/audit_speed.py [--train 20000] [--test 2000] [--planted 200]

The synthetic case is random hashes, not images: every image gets 37 uniformly random 256-bit
view hashes (as a non-flat real image has) and a unique exact hash. ``--planted`` test images are
perturbed copies (up to 6 bits flipped in the 64-bit prefix, up to 30 elsewhere) of a training
view, or carry a view that is a perturbed copy of a training image, so the run also checks that
the index finds them all. Random hashes fill the index tables evenly; hashes of real photos do
not, so the script also measures the index's candidate rate on real photo crops (scikit-image
samples) next to random hashes of the same count. The all-pairs figure is measured on a sample of
test images with the same vectorised distance code and scaled up.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import time

import numpy as np
from PIL import Image

from anyir.data.audit import (
    DEFAULT_THRESHOLD,
    HASH_BYTES,
    PREFIX_THRESHOLD,
    VIEWS,
    Fingerprint,
    _ChunkIndex,
    _stack_views,
    _words,
    audit,
    exact_hash,
    fingerprint,
    view_hashes,
)
from anyir.data.images import decode_image, encode_png


def random_fingerprints(rng: np.random.Generator, count: int, split: str) -> list[Fingerprint]:
    raw = rng.integers(0, 256, size=(count, len(VIEWS) * HASH_BYTES), dtype=np.uint8)
    return [Fingerprint(f"{split}{i:06d}", "synthetic", split, hashlib.sha256(f"{split}{i}".encode()).hexdigest(),
                        raw[i].tobytes()) for i in range(count)]


def perturb(hash_bytes: bytes, rng: np.random.Generator) -> bytes:
    """Flip up to 6 of the 64 prefix bits and up to 30 of the other 192 (total <= 36 < threshold)."""
    bits = np.unpackbits(np.frombuffer(hash_bytes, np.uint8))
    flips = np.concatenate([rng.choice(64, int(rng.integers(0, 7)), replace=False),
                            64 + rng.choice(192, int(rng.integers(0, 31)), replace=False)])
    bits[flips] ^= 1
    return np.packbits(bits).tobytes()


def plant(test: list[Fingerprint], train: list[Fingerprint], count: int, rng: np.random.Generator) -> set:
    """Make ``count`` test images near copies of training images (half in each direction)."""
    expected = set()
    for n, i in enumerate(rng.choice(len(test), count, replace=False)):
        j = int(rng.integers(len(train)))
        t_views = [test[i].phash[v * HASH_BYTES:(v + 1) * HASH_BYTES] for v in range(len(VIEWS))]
        r_views = [train[j].phash[v * HASH_BYTES:(v + 1) * HASH_BYTES] for v in range(len(VIEWS))]
        if n % 2:  # the test image is a crop of the training image: its whole ~ a training view
            t_views[0] = perturb(r_views[int(rng.integers(len(VIEWS)))], rng)
        else:  # the training image is a crop of the test image: a test view ~ its whole
            t_views[1 + int(rng.integers(len(VIEWS) - 1))] = perturb(r_views[0], rng)
        f = test[i]
        test[i] = Fingerprint(f.key, f.task, f.split, f.exact, b"".join(t_views))
        expected.add((f.key, train[j].key))
    return expected


def all_pairs_seconds(test: list[Fingerprint], train: list[Fingerprint], sample: int) -> float:
    """Seconds for the matching rule over all pairs, measured on ``sample`` test images, scaled up."""
    train_views, _ = _stack_views([f.phash for f in train])
    train_whole = np.stack([_words(f.phash)[0] for f in train])
    started = time.perf_counter()
    for f in test[:sample]:
        views = _words(f.phash)
        # whole test image against every train view, then every test view against every train whole
        for xor in (views[0] ^ train_views, views[:, None, :] ^ train_whole[None, :, :]):
            bits = np.bitwise_count(xor)
            _ = np.flatnonzero((bits[..., 0] <= PREFIX_THRESHOLD) & (bits.sum(axis=-1) <= DEFAULT_THRESHOLD))
    return (time.perf_counter() - started) / sample * len(test)


def candidate_rate(test_hashes: list[bytes], train_hashes: list[bytes]) -> float:
    """Candidates the index checks per (query, key view), test wholes against train views."""
    keys, _ = _stack_views(train_hashes)
    queries = np.stack([_words(h)[0] for h in test_hashes])
    q, _ = _ChunkIndex(keys).candidates(queries)
    return len(q) / (len(queries) * len(keys))


def photo_crop_hashes(names: list[str], count: int, rng: np.random.Generator) -> list[bytes]:
    """View hashes of ``count`` random square crops (96 px to full) of the named photos; flat ones left out."""
    from anyir.data.sources.refs import load_skimage

    hashes = []
    for k in range(count):
        img = load_skimage(names[k % len(names)])[0]
        h, w = img.shape[:2]
        size = int(rng.integers(min(96, h, w), min(h, w) + 1))
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        phash = view_hashes(np.ascontiguousarray(img[top:top + size, left:left + size]))
        if phash:
            hashes.append(phash)
    return hashes


def fingerprint_ms(repeats: int) -> dict[str, float]:
    from anyir.data.sources.refs import load_skimage

    image = np.asarray(Image.fromarray(load_skimage("astronaut")[0]).resize((1280, 720), Image.BICUBIC))
    png = encode_png(image, 1)
    steps = {"fingerprint": lambda: fingerprint("k", "t", "train", image), "sha256 part": lambda: exact_hash(image),
             "perceptual part": lambda: view_hashes(image),
             "for scale, decoding it from PNG": lambda: decode_image(png),
             "encoding it as PNG (level 1)": lambda: encode_png(image, 1)}
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):  # interleaved, best of: the machine is shared
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: 1e3 * seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--planted", type=int, default=200)
    parser.add_argument("--all-pairs-sample", type=int, default=20, help="test images timed for the all-pairs figure")
    parser.add_argument("--photo-crops", type=int, default=600, help="real photo crops for the candidate rate (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{datetime.datetime.now().isoformat(timespec='seconds')}  {platform.node()}  {os.cpu_count()} CPUs  "
          f"load average {os.getloadavg()[0]:.1f}  numpy {np.__version__}")

    train = random_fingerprints(rng, args.train, "train")
    test = random_fingerprints(rng, args.test, "test")
    expected = plant(test, train, args.planted, rng)

    print(f"synthetic: {args.test} test x {args.train} train images, {len(VIEWS)} random 256-bit view hashes each")
    for name, queries_of, keys_of in (("whole test vs train views", test, train),
                                      ("whole train vs test views", train, test)):
        started = time.perf_counter()
        keys, _ = _stack_views([f.phash for f in keys_of])
        index = _ChunkIndex(keys)
        built = time.perf_counter()
        queries = np.stack([_words(f.phash)[0] for f in queries_of])
        index.matches(queries, DEFAULT_THRESHOLD)
        queried = time.perf_counter()
        checked = sum(len(index.candidates(queries[i:i + 256])[0]) for i in range(0, min(len(queries), 1024), 256))
        per_query = checked / min(len(queries), 1024)
        print(f"  {name}: index of {len(keys)} views built in {built - started:.2f} s, {len(queries)} queries "
              f"in {queried - built:.2f} s ({per_query:.0f} candidates per query, {100 * per_query / len(keys):.2f}%)")
    started = time.perf_counter()
    report = audit(test, train)
    total = time.perf_counter() - started
    found = {(p.test_key, p.train_key) for p in report.pairs}
    brute = all_pairs_seconds(test, train, args.all_pairs_sample)
    print(f"  audit() end to end (grouping, both directions, report): {total:.2f} s; planted near copies found: "
          f"{len(expected & found)}/{len(expected)}, other pairs: {len(found - expected)}")
    print(f"  all pairs, same distance code: about {brute:.0f} s (measured on {args.all_pairs_sample} test images) "
          f"= {brute / total:.0f}x the indexed audit")

    if args.photo_crops:  # test crops come from other photos than the train crops, as in the demo
        train_photos = ["astronaut", "brick", "camera", "clock", "coffee", "grass", "gravel", "hubble_deep_field",
                        "immunohistochemistry", "moon", "page", "retina", "text"]
        train_real = photo_crop_hashes(train_photos, args.photo_crops, rng)
        test_real = photo_crop_hashes(["chelsea", "coins", "rocket"], args.photo_crops // 10, rng)
        real = candidate_rate(test_real, train_real)
        uniform = candidate_rate([f.phash for f in test[:len(test_real)]], [f.phash for f in train[:len(train_real)]])
        print(f"index candidate rate, {len(test_real)} test x {len(train_real)} train crops of different photos: "
              f"real {100 * real:.2f}% of views, random hashes {100 * uniform:.2f}% ({real / uniform:.1f}x)")

    ms = fingerprint_ms(10)
    print("fingerprint of a 1280x720 image (best of 10): " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))


if __name__ == "__main__":
    main()
