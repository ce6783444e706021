"""A short prepared training run that prints images/s, peak GPU memory and loader wait share.

Run through ``scripts/gpu_check.sh`` (sets PYTHONPATH=. so the package need not be installed).
On a GPU: a few hundred steps of ``tiny`` at the paper's batch 32 and 128 px crops, bf16 autocast.
``--cpu-smoke``: a few small steps on CPU, only to show the script works end to end.
Shards: ``--shards DIR``, else the demo recipe is built into a temporary folder (timed separately).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def parse_args() -> argparse.Namespace:
    """Command-line options (defaults: the GPU run)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run (few steps, small batch and crop)")
    p.add_argument("--shards", type=Path, default=None, help="shard set to stream (default: build the demo recipe)")
    p.add_argument("--variant", default="tiny", help="model variant (default tiny)")
    p.add_argument("--steps", type=int, default=None, help="steps (GPU default 300, CPU smoke 3)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch (GPU default 32, CPU smoke 4)")
    p.add_argument("--crop", type=int, default=None, help="crop size (GPU default 128, CPU smoke 64)")
    p.add_argument("--num-workers", type=int, default=None, help="loader workers (default: min(8, cpus - 1))")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="keep the run folder here (default: temporary)")
    return p.parse_args()


def build_demo_shards(folder: Path) -> tuple[Path, float]:
    """Build the demo recipe into ``folder``; return (shard dir, seconds)."""
    from anyir.data.build import build_shards
    from anyir.data.recipe import load_recipe

    start = time.perf_counter()
    build_shards(load_recipe("demo"), folder, workers=max(1, min(8, (os.cpu_count() or 2) - 1)), progress=False)
    return folder, time.perf_counter() - start


def steady_images_per_s(run_dir: Path, batch: int) -> tuple[float, int]:
    """Images/s after the first 10% of steps (start-up, cuDNN autotuning and compile excluded)."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    if len(lines) < 2:
        return float("nan"), 0
    last = lines[-1]
    first = next((m for m in lines if m["step"] >= max(1, last["step"] // 10)), lines[0])
    if last["step"] == first["step"]:
        first = lines[0]
    return (last["step"] - first["step"]) * batch / max(last["time_s"] - first["time_s"], 1e-9), first["step"]


def main() -> None:
    """Build or find shards, train, print one block of figures."""
    args = parse_args()
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU visible; run with --cpu-smoke to test the script on CPU")
    from anyir.train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="anyir-gpu-check-") as tmp:
        shards, build_s = (args.shards, 0.0) if args.shards else build_demo_shards(Path(tmp) / "shards")
        steps = args.steps or (3 if smoke else 300)
        batch = args.batch_size or (4 if smoke else 32)
        workers = args.num_workers if args.num_workers is not None else max(0, min(8, (os.cpu_count() or 2) - 1))
        run_dir = args.out or Path(tmp) / "run"
        cfg = TrainConfig(
            shards=shards, variant=args.variant, steps=steps, batch_size=batch, crop=args.crop or (64 if smoke else 128),
            num_workers=workers, device="cpu" if smoke else "cuda", precision=args.precision,
            channels_last=args.channels_last, compile=args.compile, out=run_dir, overwrite=True,
            ckpt_every=steps, log_every=max(1, steps // 30), name="gpu-check",
        )
        if torch.cuda.is_available() and not smoke:
            torch.cuda.reset_peak_memory_stats()
        summary = train(cfg)
        steady, from_step = steady_images_per_s(run_dir, batch)
        print_block(cfg, summary, steady, from_step, build_s, smoke)


def print_block(cfg, summary: dict, steady: float, from_step: int, build_s: float, smoke: bool) -> None:
    """The figures, one clean block."""
    if smoke:
        device = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
        memory = "n/a (CPU)"
    else:
        props = torch.cuda.get_device_properties(0)
        device = f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
        memory = (f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
                  f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved")
    rows = [
        ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("device", device),
        ("torch", torch.__version__),
        ("run", f"{cfg.variant}, {summary['steps']} steps, global batch {cfg.batch_size}, crop {cfg.crop}, "
                f"{cfg.num_workers} workers, {summary['precision']}, world {summary['world_size']}"
                f"{', channels_last' if cfg.channels_last else ''}{', compiled' if cfg.compile else ''}"),
        ("images/s", f"{steady:.1f} steady (steps {from_step}-{summary['steps']}), "
                     f"{summary['images_per_s']:.1f} overall"),
        ("step time", f"{1000 * cfg.batch_size / steady:.1f} ms (steady)"),
        ("peak GPU memory", memory),
        ("loader wait share", f"{100 * summary['loader_wait_share']:.1f} % of loop time"),
        ("train wall time", f"{summary['wall_time_s']:.1f} s"),
        ("shard build", f"{build_s:.1f} s (demo recipe)" if build_s else f"given: {cfg.shards}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n=== anyir gpu_check " + "=" * 50)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("=" * 70)


if __name__ == "__main__":
    main()
