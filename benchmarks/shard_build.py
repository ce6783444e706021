"""Shard build throughput and image encoding trade-offs.

Prints: images/s and disk size for building the demo recipe with 1 and 2 workers in its shipped
encoding (train ``npy``, test PNG) and with train PNG, the share of single-worker build time spent
encoding, and for PNG compress levels 0/1/3/6/9, raw .npy and lossless WebP: bytes per image,
encode and decode time. (Decode costs at photo sizes, and patches: benchmarks/loader_speed.py.) Timings are wall-clock on whatever machine runs this
(say which, and how busy, when you quote them).

    .venv/bin/python benchmarks/shard_build.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from anyir.data import shard_writer
from anyir.data.build import build_shards
from anyir.data.codec import decode, encode
from anyir.data.recipe import Recipe, load_recipe
from anyir.data.samples import iter_samples


def demo_recipe(train_format: str) -> Recipe:
    """The demo recipe with its train split in ``train_format`` (test stays PNG)."""
    recipe = load_recipe("demo")
    return recipe.model_copy(update={"encoding": recipe.encoding.model_copy(update={"format": train_format})})


def build_rate(recipe: Recipe, workers: int, out: Path) -> tuple[float, int, float]:
    """(images/s, images, train MB on disk) for a full build; 'images' counts every gt and lq written."""
    start = time.perf_counter()
    manifest = build_shards(recipe, out, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    images = sum(ts.samples * (1 if t == "denoise" else 2) for s in manifest.splits.values() for t, ts in s.items())
    train_mb = sum(sh.bytes for ts in manifest.splits["train"].values() for sh in ts.shards) / 2**20
    return images / seconds, images, train_mb


def encoding_share(recipe: Recipe, out: Path) -> float:
    """Fraction of a 1-worker build spent inside image encoding."""
    spent = [0.0]
    real = shard_writer.encode

    def timed(arr, fmt, level=1):
        t0 = time.perf_counter()
        data = real(arr, fmt, level)
        spent[0] += time.perf_counter() - t0
        return data

    shard_writer.encode = timed
    try:
        start = time.perf_counter()
        build_shards(recipe, out, workers=1, progress=False)
        total = time.perf_counter() - start
    finally:
        shard_writer.encode = real
    return spent[0] / total


def encoders() -> dict[str, tuple]:
    """name -> (encode(arr) -> bytes, decode(bytes) -> arr)."""
    def png(level):
        return (lambda a: encode(a, "png", level)), (lambda b: decode("gt.png", b))

    def webp_enc(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="WEBP", lossless=True, quality=0, method=0)
        return buf.getvalue()

    table = {f"png-{lvl}": png(lvl) for lvl in (0, 1, 3, 6, 9)}
    table["npy (raw, view)"] = (lambda a: encode(a, "npy"), lambda b: decode("gt.npy", b))
    table["webp-lossless m0"] = (webp_enc, lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))
    return table


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(enc, dec, images: list[np.ndarray], repeats: int) -> tuple[int, float, float]:
    """(total bytes, best encode seconds, best decode seconds) for one encoding; checks losslessness."""
    blobs = [enc(a) for a in images]
    assert all(np.array_equal(dec(b), a) for b, a in zip(blobs, images, strict=True)), "not lossless"
    t_enc = min(_time(lambda: [enc(a) for a in images]) for _ in range(repeats))
    t_dec = min(_time(lambda: [dec(b) for b in blobs]) for _ in range(repeats))
    return sum(map(len, blobs)), t_enc, t_dec


def compare_encodings(images: list[np.ndarray], repeats: int) -> None:
    """Print size and speed of each encoding over ``images``."""
    n, pixels, raw = len(images), sum(a.shape[0] * a.shape[1] for a in images), sum(a.nbytes for a in images)
    print(f"\nencodings over {n} demo images ({pixels / n:.0f} px each on average), best of {repeats}:")
    print(f"{'encoding':18s} {'KB/img':>8s} {'ratio':>6s} {'enc ms/img':>11s} {'dec ms/img':>11s} {'dec MPix/s':>11s}")
    for name, (enc, dec) in encoders().items():
        size, t_enc, t_dec = measure(enc, dec, images, repeats)
        print(f"{name:18s} {size / n / 1024:8.1f} {raw / size:6.2f} {t_enc / n * 1e3:11.2f} "
              f"{t_dec / n * 1e3:11.2f} {pixels / t_dec / 1e6:11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best of N) for the encoding table")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs visible; timings are wall-clock and depend on machine load")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("npy", "png"):
            recipe = demo_recipe(fmt)
            for workers in (1, 2):
                rate, n, train_mb = build_rate(recipe, workers, Path(tmp) / f"{fmt}{workers}")
                print(f"demo build, train {fmt}, {workers} worker(s): {rate:7.1f} images/s ({n} images incl. lq), "
                      f"train split {train_mb:.1f} MB")
            print(f"share of 1-worker build time in encoding (train {fmt}): "
                  f"{encoding_share(recipe, Path(tmp) / f'enc-{fmt}'):.0%}")
        images = [s.gt for s in iter_samples(Path(tmp) / "png1", "train", tasks=["dehaze"])][:24]
        images += [s.lq for s in iter_samples(Path(tmp) / "png1", "train", tasks=["derain"])][:24]
    compare_encodings(images, args.repeats)


if __name__ == "__main__":
    main()
