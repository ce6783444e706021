"""Loader throughput vs the training step it must keep fed.

Measures, in ONE process each (i.e. per DataLoader worker):
  * the shard stream (MixtureStream: tar read + PNG decode + paired crop/flips + online noise),
  * a PromptIR-style loose-file loader over the same images (PIL.open per file + crop + flips),
  * the training step time of AnyIR variants at batch B x crop C (forward + L1 backward + Adam),
and prints the ratio loader samples/s per worker : samples/s a step consumes.

    .venv/bin/python benchmarks/loader_speed.py                    # builds a synthetic shard set
    .venv/bin/python benchmarks/loader_speed.py --shards shards/demo --variants nano

Timings are wall-clock on whatever machine runs this; on the shared 2-core development box
they are noisy (other jobs compete for the cores): read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from anyir.data.augment import PairedAugment, to_batch  # noqa: E402
from anyir.data.manifest import load_manifest  # noqa: E402
from anyir.data.stream import MixtureStream, iter_tar_samples  # noqa: E402

BENCH_IMAGES = ["astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                "camera", "brick", "grass", "gravel", "moon"]
TASKS = [("denoise", {"name": "noise", "sigmas": [15, 25, 50]}), ("derain", {"name": "rain"}),
         ("dehaze", {"name": "haze"}), ("deblur", {"name": "blur"}), ("lowlight", {"name": "lowlight"})]


def build_bench_shards(out: Path, image_size: int, per_image: int) -> Path:
    """A five-task synthetic shard set of ``image_size`` px crops of scikit-image samples."""
    from anyir.data.build import build_shards
    from anyir.data.recipe import validate_recipe

    sources = [{"name": f"bench_{task}", "task": task, "split": "train", "dataset": "bench", "kind": "synthetic",
                "images": {"skimage": BENCH_IMAGES}, "crop": {"size": image_size, "per_image": per_image},
                "degradation": degradation} for task, degradation in TASKS]
    recipe = {"name": "loader_bench", "seed": 0, "shard_size": 64, "default_balance": "uniform", "sources": sources}
    build_shards(validate_recipe(recipe), out, workers=1, progress=False)
    return out


def write_loose_files(shards: Path, folder: Path) -> list[tuple[Path, Path | None, float | None]]:
    """Write every train pair as loose PNG files, byte for byte the PNGs inside the shards, so the
    comparison isolates the loading method (tar stream vs one open per file) from the encoding."""
    pairs = []
    manifest = load_manifest(shards)
    for task in manifest.tasks("train"):
        for info in manifest.shards(task, "train"):
            for key, members in iter_tar_samples(str(shards / info.path)):
                gt = folder / f"{key}.gt.png"
                gt.write_bytes(members["gt.png"])
                lq = folder / f"{key}.lq.png" if "lq.png" in members else None
                if lq is not None:
                    lq.write_bytes(members["lq.png"])
                pairs.append((gt, lq, json.loads(members["json"]).get("online_noise_sigma")))
    return pairs


class FolderPairs(torch.utils.data.Dataset):
    """PromptIR-style: open both files per sample, crop the same place, flip, add noise if needed."""

    def __init__(self, pairs, crop: int):
        self.pairs, self.augment = pairs, PairedAugment(crop)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        gt_path, lq_path, sigma = self.pairs[i]
        gt = np.asarray(Image.open(gt_path).convert("RGB"))
        lq = None if lq_path is None else np.asarray(Image.open(lq_path).convert("RGB"))
        return self.augment(gt, lq, sigma, "bench", i)


def collate_pairs(items):
    """Same float conversion as the stream (numpy, see anyir.data.augment.to_batch)."""
    return to_batch([lq for lq, _ in items]), to_batch([gt for _, gt in items])


def time_stream(shards: Path, batch: int, crop: int, batches: int) -> float:
    """Samples/s of the shard stream in this process (= one loader worker)."""
    stream = MixtureStream(shards, "uniform", batch_size=batch, crop=crop, seed=0,
                           samples_per_epoch=batch * (batches + 1), num_workers=1)
    it = iter(stream)
    next(it)  # warm-up (plan, first shard opens)
    start = time.perf_counter()
    n = sum(len(b["key"]) for _, b in zip(range(batches), it, strict=False))
    return n / (time.perf_counter() - start)


def time_folder(pairs, batch: int, crop: int, batches: int) -> float:
    """Samples/s of the loose-file loader in this process."""
    loader = torch.utils.data.DataLoader(FolderPairs(pairs, crop), batch_size=batch, shuffle=True, num_workers=0,
                                         collate_fn=collate_pairs)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += len(next(it)[0])
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - start)


def time_train_step(variant: str, batch: int, crop: int, steps: int) -> float:
    """Seconds per training step (forward, L1 loss, backward, Adam) on CPU."""
    from anyir.model import create_model

    model = create_model(variant)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    x, y = torch.rand(batch, 3, crop, crop), torch.rand(batch, 3, crop, crop)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(model(x), y).backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=Path, help="an existing shard set (default: build a synthetic one)")
    parser.add_argument("--image-size", type=int, default=320, help="stored image size of the built set (px)")
    parser.add_argument("--per-image", type=int, default=2, help="crops per source image in the built set")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20, help="batches timed per loader")
    parser.add_argument("--repeats", type=int, default=3, help="alternating loader runs; the best is reported")
    parser.add_argument("--variants", default="nano,tiny", help="model variants to time (comma list)")
    parser.add_argument("--steps", type=int, default=2, help="training steps timed per variant")
    parser.add_argument("--train-threads", type=int, default=0,
                        help="torch threads for the training step (0: torch's default; 1 is steadier on a busy box)")
    args = parser.parse_args()
    train_threads = args.train_threads or torch.get_num_threads()
    torch.set_num_threads(1)  # as inside a DataLoader worker

    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards or build_bench_shards(Path(tmp) / "shards", args.image_size, args.per_image)
        folder = Path(tmp) / "loose"
        folder.mkdir()
        pairs = write_loose_files(shards, folder)
        sizes = {Image.open(p[0]).size for p in pairs[:50]}
        runs = [(time_stream(shards, args.batch, args.crop, args.batches),
                 time_folder(pairs, args.batch, args.crop, args.batches)) for _ in range(args.repeats)]
        stream_sps, folder_sps = max(r[0] for r in runs), max(r[1] for r in runs)  # least disturbed run
    torch.set_num_threads(train_threads)

    print(f"# loader_speed: {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; loaders 1 torch thread, training {train_threads} (shared, busy machine: noisy)")
    print(f"images: {len(pairs)} pairs, stored sizes e.g. {sorted(sizes)[:3]}; batch {args.batch} x crop {args.crop}")
    print(f"shard stream   : {stream_sps:8.1f} samples/s per worker process (best of {args.repeats}: "
          f"{', '.join(f'{r[0]:.1f}' for r in runs)})")
    print(f"loose files    : {folder_sps:8.1f} samples/s per worker process (PIL.open per file, same PNG bytes; "
          f"{', '.join(f'{r[1]:.1f}' for r in runs)})")
    print(f"stream / folder: {stream_sps / folder_sps:8.2f}x")
    for variant in [v for v in args.variants.split(",") if v]:
        step_s = time_train_step(variant, args.batch, args.crop, args.steps)
        demand = args.batch / step_s
        print(f"train step {variant:5s}: {step_s:7.3f} s/step on CPU = {demand:7.1f} samples/s demanded; "
              f"one stream worker supplies {stream_sps / demand:7.1f}x that")


if __name__ == "__main__":
    main()
