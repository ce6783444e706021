"""The prepared GPU check: a few minutes that give every speed figure the docs need.

Run through ``scripts/gpu_check.sh`` (sets PYTHONPATH=. so the package need not be installed).
On one GPU (about 3-4 minutes on an H100/A100 with the defaults):

1. the demo recipe built into a temporary folder (train members in the default ``npy``
   encoding), unless ``--shards DIR`` is given;
2. AnyIR-T (``--variant tiny``) trained for ``--steps`` steps at the paper's global batch 32 and
   128 px crops in bf16 autocast, through the real trainer and loader with ``--num-workers``
   workers: steady images/s, time to the first step, peak GPU memory, loader wait share;
3. the same with ``torch.compile``: steady images/s, and the compile warm-up (its first-step
   time minus the eager run's) printed separately;
4. inference images/s at 256x256 (batch ``--infer-batch``, bf16) for AnyIR-T, and for PromptIR
   when ``--promptir DIR`` points at a checkout of its repository (``net/model.py``; PromptIR
   needs ``einops``), skipped with a message otherwise;
5. one JSON file with everything (``--json``, default ``gpu_check.json``).

``--cpu-smoke`` runs the same phases tiny on CPU (a few steps of the ``pico`` variant, small
crops; ``torch.compile`` with the ``eager`` backend so the compiled path is traced without
minutes of C++ code generation): it checks the script, its figures are not speed figures.

Imports only torch, numpy, Pillow, OpenCV, scikit-image (for the demo build), pydantic, PyYAML,
tqdm and safetensors: no webdataset, albumentations, duckdb, pyiqa or datasets.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults: the GPU run)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run of every phase (checks the script)")
    p.add_argument("--shards", type=Path, default=None, help="shard set to stream (default: build the demo recipe)")
    p.add_argument("--variant", default=None, help="model variant (GPU default tiny = AnyIR-T, CPU smoke pico)")
    p.add_argument("--steps", type=int, default=None, help="steps per training run (GPU default 200, CPU smoke 2)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch (GPU default 32, CPU smoke 4)")
    p.add_argument("--crop", type=int, default=None, help="training crop (GPU default 128, CPU smoke 32)")
    p.add_argument("--num-workers", type=int, default=None, help="loader workers (default: min(8, cpus - 1))")
    p.add_argument("--infer-side", type=int, default=None, help="inference size (GPU default 256, CPU smoke 64)")
    p.add_argument("--infer-batch", type=int, default=None, help="inference batch (GPU default 8, CPU smoke 1)")
    p.add_argument("--infer-iters", type=int, default=None, help="timed inference batches (GPU 30, CPU smoke 2)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile run")
    p.add_argument("--promptir", type=Path, default=None, help="a PromptIR checkout (holds net/model.py)")
    p.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: temporary)")
    p.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="summary file (default gpu_check.json)")
    args = p.parse_args(argv)
    smoke = args.cpu_smoke
    defaults = {"variant": ("tiny", "pico"), "steps": (200, 2), "batch_size": (32, 4), "crop": (128, 32),
                "infer_side": (256, 64), "infer_batch": (8, 1), "infer_iters": (30, 2)}
    for name, (gpu, cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, cpu if smoke else gpu)
    if args.num_workers is None:
        args.num_workers = 0 if smoke else max(0, min(8, (os.cpu_count() or 2) - 1))
    return args


def build_demo_shards(folder: Path, workers: int) -> tuple[Path, float]:
    """Build the demo recipe into ``folder``; return (shard dir, seconds)."""
    from anyir.data.build import build_shards
    from anyir.data.recipe import load_recipe

    start = time.perf_counter()
    build_shards(load_recipe("demo"), folder, workers=max(1, workers), progress=False)
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


def train_run(args: argparse.Namespace, shards: Path, run_dir: Path, compiled: bool) -> dict:
    """One training run through the real trainer and loader; its figures."""
    from anyir.train import TrainConfig, train

    gpu = not args.cpu_smoke
    cfg = TrainConfig(
        shards=shards, variant=args.variant, steps=args.steps, batch_size=args.batch_size, crop=args.crop,
        num_workers=args.num_workers, device="cuda" if gpu else "cpu", precision="bf16" if gpu else "fp32",
        compile=compiled, out=run_dir, overwrite=True, ckpt_every=args.steps,
        log_every=max(1, args.steps // 40), name=f"gpu-check-{'compiled' if compiled else 'eager'}", progress=False,
    )
    first_step: list[float] = []

    def on_step(step: int, loss: float, model: torch.nn.Module) -> None:
        if not first_step:
            first_step.append(time.perf_counter())

    if gpu:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    summary = train(cfg, on_step=on_step)
    steady, from_step = steady_images_per_s(run_dir, args.batch_size)
    return {
        "compiled": compiled, "steps": summary["steps"], "precision": summary["precision"],
        "images_per_s_steady": round(steady, 2), "steady_from_step": from_step,
        "images_per_s_overall": round(summary["images_per_s"], 2),
        "first_step_s": round(first_step[0] - start, 2) if first_step else None,
        "wall_s": round(time.perf_counter() - start, 2),
        "loader_wait_share": summary["loader_wait_share"],
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if gpu else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3) if gpu else None,
    }


def inference_images_per_s(model: torch.nn.Module, args: argparse.Namespace) -> float:
    """Images/s of ``model`` at ``infer_side`` px, batch ``infer_batch`` (bf16 autocast on GPU)."""
    device = "cpu" if args.cpu_smoke else "cuda"
    model = model.to(device).eval()
    x = torch.rand(args.infer_batch, 3, args.infer_side, args.infer_side, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")

    def run(n: int) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad(), autocast:
            for _ in range(n):
                model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(max(1, args.infer_iters // 5))  # warm-up (cuDNN autotuning, allocator)
    return args.infer_iters * args.infer_batch / run(args.infer_iters)


def load_promptir(checkout: Path) -> torch.nn.Module:
    """PromptIR as its repository builds it for all-in-one training (``PromptIR(decoder=True)``)."""
    if not (checkout / "net" / "model.py").is_file():
        raise SystemExit(f"gpu_check: --promptir {checkout}: no net/model.py there; give a PromptIR checkout")
    sys.path.insert(0, str(checkout))
    try:
        from net.model import PromptIR
    except ImportError as exc:
        raise SystemExit(f"gpu_check: --promptir {checkout}: cannot import net.model ({exc}); "
                         "PromptIR needs einops (carry its wheel)") from None
    finally:
        sys.path.remove(str(checkout))
    return PromptIR(decoder=True)


def device_name(smoke: bool) -> str:
    """The accelerator (or CPU) in words."""
    if smoke:
        return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    props = torch.cuda.get_device_properties(0)
    return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"


def main(argv: list[str] | None = None) -> dict:
    """Build or find shards, run every phase, print one block, write the JSON summary."""
    args = parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU visible; run with --cpu-smoke to test the script on CPU")
    if args.cpu_smoke:
        # Trace the compiled path with dynamo but skip inductor's C++ code generation (minutes on CPU).
        torch.compile = functools.partial(torch.compile, backend="eager")
    from anyir.model import create_model

    report: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "device": device_name(args.cpu_smoke), "torch": torch.__version__, "cpu_smoke": args.cpu_smoke,
                    "cpus": os.cpu_count(), "variant": args.variant, "batch_size": args.batch_size, "crop": args.crop,
                    "num_workers": args.num_workers}
    with tempfile.TemporaryDirectory(prefix="anyir-gpu-check-") as tmp:
        out = args.out or Path(tmp)
        if args.shards:
            shards, build_s = args.shards, 0.0
        else:
            shards, build_s = build_demo_shards(Path(tmp) / "shards", max(1, (os.cpu_count() or 2) - 1))
        from anyir.data.manifest import load_manifest

        report["shards"] = {"path": str(args.shards) if args.shards else "demo recipe (temporary)",
                            "build_s": round(build_s, 1), "encoding": load_manifest(shards).encoding}
        report["train_eager"] = train_run(args, shards, out / "eager", compiled=False)
        if not args.no_compile:
            report["train_compiled"] = train_run(args, shards, out / "compiled", compiled=True)
            report["compile_warmup_s"] = round(report["train_compiled"]["first_step_s"]
                                               - report["train_eager"]["first_step_s"], 2)
    report["inference"] = {"side": args.infer_side, "batch": args.infer_batch,
                           "anyir_images_per_s": round(inference_images_per_s(create_model(args.variant), args), 2)}
    if args.promptir:
        report["inference"]["promptir_images_per_s"] = round(inference_images_per_s(load_promptir(args.promptir),
                                                                                    args), 2)
    else:
        report["inference"]["promptir_images_per_s"] = None
        report["inference"]["promptir_note"] = "skipped: give --promptir DIR (a PromptIR checkout) to compare"
    print_block(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"summary: {args.json}")
    return report


def print_block(r: dict) -> None:
    """The figures, one clean block."""
    eager, compiled = r["train_eager"], r.get("train_compiled")

    def memory(run: dict) -> str:
        if run["peak_memory_gib"] is None:
            return "n/a (CPU)"
        return f"{run['peak_memory_gib']:.2f} GiB allocated, {run['peak_reserved_gib']:.2f} GiB reserved"

    inf = r["inference"]
    rows = [
        ("date", r["date"]),
        ("device", r["device"]),
        ("torch", r["torch"]),
        ("run", f"{r['variant']}, {eager['steps']} steps, global batch {r['batch_size']}, crop {r['crop']}, "
                f"{r['num_workers']} workers, {eager['precision']}"),
        ("shards", f"{r['shards']['path']}, encoding {r['shards']['encoding']}"
                   + (f", built in {r['shards']['build_s']:.1f} s" if r["shards"]["build_s"] else "")),
        ("train images/s (eager)", f"{eager['images_per_s_steady']:.1f} steady (from step {eager['steady_from_step']}), "
                                   f"first step after {eager['first_step_s']} s"),
        ("train images/s (compile)", "skipped (--no-compile)" if compiled is None else
         f"{compiled['images_per_s_steady']:.1f} steady (from step {compiled['steady_from_step']})"),
        ("compile warm-up", "skipped" if compiled is None else f"{r['compile_warmup_s']:.1f} s (first step, "
                                                                  "compiled minus eager)"),
        ("peak GPU memory", memory(eager) + ("" if compiled is None else f"; compiled: {memory(compiled)}")),
        ("loader wait share", f"{100 * eager['loader_wait_share']:.1f} % of loop time at {r['num_workers']} workers"
                              + ("" if compiled is None else
                                 f" (compiled run: {100 * compiled['loader_wait_share']:.1f} %)")),
        (f"inference {inf['side']}px", f"AnyIR {inf['anyir_images_per_s']:.1f} images/s (batch {inf['batch']}); "
         + (f"PromptIR {inf['promptir_images_per_s']:.1f} images/s" if inf["promptir_images_per_s"] is not None
            else f"PromptIR {inf['promptir_note']}")),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n=== anyir gpu_check " + "=" * 50)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("=" * 70)


if __name__ == "__main__":
    main()
