"""Loader speed: the shard stream in the default training encoding vs a PromptIR-style PNG folder.

    python benchmarks/loader_speed.py --source-size 481x321 --json loader_481.json
    python benchmarks/loader_speed.py --source-size 1280x720 --json loader_720p.json

What it does, in ONE process (= one DataLoader worker) for each side:

1. Source images at ``--source-size``: scikit-image samples scaled (PIL bicubic) to cover the size
   and centre-cropped; the degraded image is a blurred, slightly noisy copy. Written as a loose
   PNG folder (``gt/`` and ``lq/``, PIL's default PNG level, as datasets ship them).
2. A shard set built from that folder with anyir's ``paired`` source in the default training
   encoding (the shipped recipes' ``encoding``, i.e. ``data_recipes/demo.yaml``).
3. Timed, alternating ``--rounds`` times: the stream (``MixtureStream``: read, decode, 128 px
   crop, flips, to-tensor, batch) after a first pass that verified every shard (the first pass
   is timed too, as ``stream_first_pass_samples_per_s``: it includes hashing each tar once), and
   the baseline: a torch ``Dataset`` that opens both PNG files with PIL per sample, crops, flips
   and converts to a tensor (PromptIR's ``PromptTrainDataset`` does the same), through a
   ``DataLoader`` with ``num_workers=0``.
4. A table of alternative encodings over the same images: decode time of what one sample must
   decode (the whole image, or one patch of a 256/128 patch cut) and disk per source image:
   PNG (level 1), raw ``.npy``, ``.npy`` + zstd (when the ``zstandard`` package is importable),
   lossless WebP; plus the per-pair cost of the albumentations vs numpy crop+flip.

Prints the figures and writes them as JSON (``--json``). Wall-clock timings depend on the
machine and its load (the load average is recorded): on a shared box, compare ratios measured
in one run (the rounds alternate), not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anyir.data.augment import PairedAugment, to_batch
from anyir.data.build import build_shards
from anyir.data.codec import decode, encode
from anyir.data.patches import patch_boxes
from anyir.data.recipe import load_recipe, validate_recipe
from anyir.data.stream import MixtureStream

SKIMAGE_RGB = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"]
CROP, BATCH = 128, 8
PATCH = (256, 128)  # the patch cut measured in the alternatives table


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--source-size {text!r}: write WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < CROP or h < CROP:
        raise argparse.ArgumentTypeError(f"--source-size {text!r}: both sides must be >= the {CROP} px crop")
    return w, h


# ---------------------------------------------------------------------------- sources


def source_pairs(width: int, height: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(gt, lq) arrays at width x height: skimage samples scaled to cover, centre-cropped; lq blurred + noise."""
    import cv2
    import skimage.data

    pairs = []
    for i in range(count):
        name = SKIMAGE_RGB[i % len(SKIMAGE_RGB)]
        img = Image.fromarray(np.asarray(getattr(skimage.data, name)())[..., :3])
        if i >= len(SKIMAGE_RGB):
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # another image, same statistics
        scale = max(width / img.width, height / img.height)
        img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))),
                         Image.Resampling.BICUBIC)
        left, top = (img.width - width) // 2, (img.height - height) // 2
        gt = np.ascontiguousarray(np.asarray(img.crop((left, top, left + width, top + height))))
        noise = np.random.default_rng(i).normal(0, 2.0, gt.shape)
        lq = np.clip(cv2.GaussianBlur(gt, (0, 0), 1.5).astype(np.float64) + noise, 0, 255).astype(np.uint8)
        pairs.append((gt, lq))
    return pairs


def write_folder(pairs: list[tuple[np.ndarray, np.ndarray]], root: Path) -> list[tuple[Path, Path]]:
    """Loose PNG files ``root/gt/NNN.png`` and ``root/lq/NNN.png`` (PIL's default level)."""
    (root / "gt").mkdir(parents=True)
    (root / "lq").mkdir()
    files = []
    for i, (gt, lq) in enumerate(pairs):
        files.append((root / "gt" / f"{i:03d}.png", root / "lq" / f"{i:03d}.png"))
        Image.fromarray(gt).save(files[-1][0])
        Image.fromarray(lq).save(files[-1][1])
    return files


def build_set(folder: Path, out: Path, encoding: dict) -> None:
    """The folder's pairs as a one-task shard set in ``encoding``."""
    recipe = {"name": "loader_bench", "seed": 0, "shard_size": 16, "default_balance": "natural",
              "encoding": encoding,
              "sources": [{"name": "bench", "task": "deblur", "split": "train", "kind": "paired",
                           "lq_dir": str(folder / "lq"), "gt_dir": str(folder / "gt")}]}
    build_shards(validate_recipe(recipe), out, workers=1, progress=False)


# ---------------------------------------------------------------------------- the two loaders


class PngFolderPairs(torch.utils.data.Dataset):
    """PromptIR-style: per sample, open both PNG files with PIL, random crop, random flips."""

    def __init__(self, files: list[tuple[Path, Path]], crop: int):
        self.files, self.crop = files, crop
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        gt_path, lq_path = self.files[i]
        gt = np.array(Image.open(gt_path).convert("RGB"))
        lq = np.array(Image.open(lq_path).convert("RGB"))
        top = int(self.rng.integers(0, gt.shape[0] - self.crop + 1))
        left = int(self.rng.integers(0, gt.shape[1] - self.crop + 1))
        gt, lq = gt[top:top + self.crop, left:left + self.crop], lq[top:top + self.crop, left:left + self.crop]
        if self.rng.random() < 0.5:
            gt, lq = gt[:, ::-1], lq[:, ::-1]
        if self.rng.random() < 0.5:
            gt, lq = gt[::-1], lq[::-1]
        return np.ascontiguousarray(lq), np.ascontiguousarray(gt)


def collate(items):
    """Same float conversion as the stream (anyir.data.augment.to_batch)."""
    return to_batch([lq for lq, _ in items]), to_batch([gt for _, gt in items])


def time_baseline(files: list[tuple[Path, Path]], samples: int) -> float:
    """Samples/s of the PNG-folder loader in this process."""
    loader = torch.utils.data.DataLoader(PngFolderPairs(files, CROP), batch_size=BATCH, shuffle=True,
                                         num_workers=0, collate_fn=collate)
    done, start = 0, time.perf_counter()
    while done < samples:
        for lq, _ in loader:
            done += len(lq)
            if done >= samples:
                break
    return done / (time.perf_counter() - start)


class StreamTimer:
    """The stream over one shard set; each call times the next ``samples`` samples."""

    def __init__(self, shards: Path, items: int):
        self.stream = MixtureStream(shards, "natural", batch_size=BATCH, crop=CROP, seed=0,
                                    samples_per_epoch=max(items, BATCH) * 1000)
        self._it = iter(self.stream)

    def __call__(self, samples: int) -> float:
        done, start = 0, time.perf_counter()
        while done < samples:
            done += len(next(self._it)["key"])
        return done / (time.perf_counter() - start)


# ---------------------------------------------------------------------------- alternatives


def codecs() -> dict[str, tuple]:
    """name -> (encode(array) -> bytes, decode(bytes) -> array) for the alternatives table."""
    table = {
        "png (level 1)": (lambda a: encode(a, "png", 1), lambda b: decode("gt.png", b)),
        "npy (raw)": (lambda a: encode(a, "npy"), lambda b: decode("gt.npy", b)),
    }
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        for level in (1, 3):
            cctx, dctx = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
            table[f"npy + zstd-{level}"] = (lambda a, c=cctx: c.compress(encode(a, "npy")),
                                             lambda b, d=dctx: decode("gt.npy", d.decompress(b)))

    def webp(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="WEBP", lossless=True, quality=0, method=0)
        return buf.getvalue()

    table["webp lossless (m0)"] = (webp, lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))
    return table


def best_ms(fn, items: list, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per item of ``fn`` over ``items``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best * 1e3


def alternatives(images: list[np.ndarray]) -> list[dict]:
    """Decode ms per sample and disk per source image, whole and cut into 256/128 patches."""
    rows = []
    png_whole = None
    h, w = images[0].shape[:2]
    boxes = patch_boxes(h, w, *PATCH)
    for name, (enc, dec) in codecs().items():
        whole = [enc(a) for a in images]
        assert all(np.array_equal(dec(b), a) for b, a in zip(whole[:2], images[:2], strict=False)), name
        one_patch = [enc(np.ascontiguousarray(a[t:t + ph, lft:lft + pw])) for a in images
                     for t, lft, ph, pw in boxes[:1]]
        patch_bytes = sum(len(enc(np.ascontiguousarray(images[0][t:t + ph, lft:lft + pw]))) for t, lft, ph, pw in boxes)
        whole_kb = statistics.mean(map(len, whole)) / 1024
        png_whole = png_whole or whole_kb
        for layout, blobs, kb in (("whole", whole, whole_kb), (f"patches {PATCH[0]}/{PATCH[1]}", one_patch,
                                                                 patch_bytes / 1024)):
            ms = best_ms(lambda b, d=dec: d(b)[:CROP, :CROP].copy(), blobs)  # decode + take a crop
            rows.append({"encoding": name, "layout": layout, "decode_crop_ms": round(ms, 4),
                         "kb_per_image": round(kb, 1), "disk_vs_png_whole": round(kb / png_whole, 2)})
    return rows


def augment_costs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """ms per pair of the paired pad + crop + flips, numpy engine vs albumentations."""
    out = {}
    for engine in ("numpy", "albumentations"):
        try:
            aug = PairedAugment(CROP, engine=engine)
        except ImportError:
            continue
        calls = [(gt, lq, i) for i, (gt, lq) in enumerate(pairs)] * 10
        out[engine] = round(best_ms(lambda c, a=aug: a(c[0], c[1], None, 0, c[2]), calls), 4)
    return out


# ---------------------------------------------------------------------------- report


def machine() -> dict:
    """What the figures were measured on."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
            "torch": torch.__version__, "numpy": np.__version__,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def print_report(r: dict) -> None:
    """The figures as text."""
    w, h = r["source_size"]
    print(f"# loader_speed {r['date']}: {w}x{h} sources, {r['pairs']} pairs, crop {CROP}, batch {BATCH}, "
          f"one process each side; {r['machine']['cpus']} CPUs, load average {r['machine']['load_average']} "
          f"-> {r['load_average_after']}")
    print(f"stream ({r['encoding']}) : {r['stream_samples_per_s']:9.1f} samples/s "
          f"(first pass, hashing each tar: {r['stream_first_pass_samples_per_s']:.1f})")
    print(f"PNG folder (PromptIR-style) : {r['baseline_samples_per_s']:9.1f} samples/s")
    each = ", ".join(f"{x['ratio']:.1f}" for x in r["rounds"])
    print(f"ratio                       : {r['ratio']:9.1f}x   (median of {len(r['rounds'])} alternating rounds: {each})")
    d = r["disk"]
    print(f"disk per pair: shards {d['shard_kb_per_pair']:.0f} KB, loose PNG {d['loose_png_kb_per_pair']:.0f} KB, "
          f"raw {d['raw_kb_per_pair']:.0f} KB")
    print(f"augment ms/pair: {r['augment_ms_per_pair']}")
    print(f"\n{'encoding':20s} {'layout':16s} {'decode+crop ms':>14s} {'KB/image':>9s} {'x png':>6s}")
    for row in r["alternatives"]:
        print(f"{row['encoding']:20s} {row['layout']:16s} {row['decode_crop_ms']:14.3f} {row['kb_per_image']:9.1f} "
              f"{row['disk_vs_png_whole']:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-size", type=parse_size, default=(481, 321), help="WIDTHxHEIGHT of the sources")
    parser.add_argument("--pairs", type=int, default=16, help="source pairs (distinct images)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--baseline-samples", type=int, default=0,
                        help="samples per baseline round (default: enough for ~3 s at the first measurement)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as inside a DataLoader worker
    width, height = args.source_size
    encoding = load_recipe("demo").encoding.model_dump(mode="json")  # the shipped training default
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "source_size": [width, height], "pairs": args.pairs, "crop": CROP, "batch": BATCH,
              "encoding": encoding}
    with tempfile.TemporaryDirectory(prefix="anyir-loader-") as tmp:
        pairs = source_pairs(width, height, args.pairs)
        files = write_folder(pairs, Path(tmp) / "folder")
        shards = Path(tmp) / "shards"
        build_set(Path(tmp) / "folder", shards, encoding)
        stream = StreamTimer(shards, args.pairs)
        report["stream_first_pass_samples_per_s"] = round(stream(max(args.pairs, BATCH)), 1)
        probe = time_baseline(files, BATCH)
        n_base = args.baseline_samples or max(BATCH, int(probe * 3) // BATCH * BATCH)  # ~3 s a round
        n_stream = max(BATCH * 8, int(report["stream_first_pass_samples_per_s"] * 3) // BATCH * BATCH)
        rounds = []
        for _ in range(args.rounds):
            base = time_baseline(files, n_base)
            fast = stream(n_stream)
            rounds.append({"stream": round(fast, 1), "baseline": round(base, 1), "ratio": round(fast / base, 2)})
        report["rounds"] = rounds
        report["stream_samples_per_s"] = statistics.median(x["stream"] for x in rounds)
        report["baseline_samples_per_s"] = statistics.median(x["baseline"] for x in rounds)
        report["ratio"] = statistics.median(x["ratio"] for x in rounds)
        shard_bytes = sum(p.stat().st_size for p in shards.rglob("*.tar"))
        png_bytes = sum(p.stat().st_size for pair in files for p in pair)
        report["disk"] = {"shard_kb_per_pair": round(shard_bytes / args.pairs / 1024, 1),
                          "loose_png_kb_per_pair": round(png_bytes / args.pairs / 1024, 1),
                          "raw_kb_per_pair": round(2 * width * height * 3 / 1024, 1)}
        report["augment_ms_per_pair"] = augment_costs(pairs[:4])
        report["alternatives"] = alternatives([gt for gt, _ in pairs[:8]])
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
