"""AnyIR speed: median inference latency and training-step time per variant and setting.

    python benchmarks/model_speed.py                       # tiny, small, nano on CPU
    python benchmarks/model_speed.py --quick               # nano + tiny, fewer repeats
    python benchmarks/model_speed.py --device cuda --compile
    python benchmarks/model_speed.py --profile tiny        # where tiny's CPU time goes

Settings: ``eager`` (faithful FFT path, contiguous), ``channels_last``, ``cl+fast_fft`` (channels_last
and the FFT-free identical frequency path), ``compile`` (torch.compile of channels_last+fast; opt-in
with --compile: inductor's C++ codegen takes minutes on a 2-core CPU). Inference at 1x3x224x224 and
1x3x256x256 (no_grad, eval); training step at 4x3x128x128 (L1 loss + Adam, forward+backward+step).
Timings are medians; on a shared, busy machine they are noisy — the script prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F

from anyir.model import AnyIR, variant_config

SETTINGS = ("eager", "channels_last", "cl+fast_fft", "compile")


def build(variant: str, setting: str, device: str) -> torch.nn.Module:
    """The variant's model in a benchmark setting, on ``device``."""
    cfg = variant_config(variant)
    if setting in ("cl+fast_fft", "compile"):
        cfg = replace(cfg, frequency_path="fast")
    model = AnyIR(cfg).to(device)
    if setting != "eager":
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if setting == "compile" else model


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], None], repeats: int, warmup: int, device: str) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs.

    With one thread on a CPU shared with other jobs, process CPU time approximates the wall
    time the run would take on an idle core; wall time there is inflated by waiting.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _input(shape: tuple[int, ...], setting: str, device: str) -> torch.Tensor:
    x = torch.rand(shape, device=device)
    return x.to(memory_format=torch.channels_last) if setting != "eager" else x


def inference_time(
    model: torch.nn.Module, side: int, setting: str, device: str, repeats: int
) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one 1x3xside x side forward pass."""
    model.eval()
    x = _input((1, 3, side, side), setting, device)

    def step() -> None:
        with torch.no_grad():
            model(x)

    return median_seconds(step, repeats, warmup=1, device=device)


def train_step_time(model: torch.nn.Module, setting: str, device: str, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one L1 + Adam step on a 4x3x128x128 batch."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    lq, gt = _input((4, 3, 128, 128), setting, device), _input((4, 3, 128, 128), setting, device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.l1_loss(model(lq), gt).backward()
        opt.step()

    return median_seconds(step, repeats, warmup=1, device=device)


def _category(name: str, shapes: list) -> str:
    """Bucket of a profiler op: FFT, conv kind, norm, statistics, attention, element-wise, memory."""
    if "fft" in name:
        return "fft"
    if "conv" in name:
        weight = shapes[1] if len(shapes) > 1 and len(shapes[1]) == 4 else None
        if weight is None:
            return "conv (other)"
        if weight[1] == 1 and weight[2] > 1:
            return "conv depthwise 3x3"
        return "conv 1x1" if weight[2] == 1 else "conv dense 3x3"
    buckets = {
        "layer_norm": "layer norm", "var_mean": "GatedDA statistics", "bmm": "attention matmul/softmax",
        "softmax": "attention matmul/softmax", "vector_norm": "attention matmul/softmax",
        "copy_": "copies/cat", "cat": "copies/cat", "clone": "copies/cat", "pad": "copies/cat",
        "gelu": "element-wise", "add": "element-wise", "mul": "element-wise", "sigmoid": "element-wise",
        "div": "element-wise", "sub": "element-wise", "sqrt": "element-wise", "rsub": "element-wise",
    }
    return next((label for key, label in buckets.items() if key in name), "other")


def profile(variant: str, setting: str, side: int, device: str) -> dict[str, float]:
    """Share of self CPU time per op category for one forward pass (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = build(variant, setting, device).eval()
    x = _input((1, 3, side, side), setting, device)
    with torch.no_grad():
        model(x)
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            model(x)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.self_cpu_time_total > 0:
            totals[_category(event.key, event.input_shapes)] += event.self_cpu_time_total
    grand = sum(totals.values())
    return {k: round(100 * v / grand, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def run(args: argparse.Namespace) -> list[dict]:
    """Time every (variant, setting); return one row per pair."""
    rows = []
    for variant in args.variants:
        for setting in args.settings:
            model = build(variant, setting, args.device)
            row = {"variant": variant, "setting": setting}
            for side in args.sizes:
                wall, cpu = inference_time(model, side, setting, args.device, args.repeats)
                row[f"infer_{side}_ms"], row[f"infer_{side}_cpu_ms"] = round(1e3 * wall), round(1e3 * cpu)
            if not args.no_train:
                wall, cpu = train_step_time(model, setting, args.device, args.repeats)
                row["train_4x128_ms"], row["train_4x128_cpu_ms"] = round(1e3 * wall), round(1e3 * cpu)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def parse_args() -> argparse.Namespace:
    """Command-line options (parsed only when run as a script)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["tiny", "small", "nano"], help="variants to time")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 256], help="square inference sizes")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=None, help="settings to time (default: all)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on CPU)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurement")
    p.add_argument("--quick", action="store_true", help="nano + tiny, 224 only, 2 repeats")
    p.add_argument("--profile", metavar="VARIANT", help="only profile VARIANT's forward at 224 by op category")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args()
    args.settings = args.settings or [s for s in SETTINGS if s != "compile" or args.compile]
    if args.quick:
        args.variants, args.sizes, args.repeats = ["nano", "tiny"], [224], 2
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"# torch {torch.__version__}, device {args.device}, nproc {os.cpu_count()}, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} "
        "(shared machine: timings are noisy upper bounds)",
        flush=True,
    )
    if args.profile:
        for setting in ("eager", "cl+fast_fft"):
            print(setting, json.dumps(profile(args.profile, setting, 224, args.device)), flush=True)
        return
    rows = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
