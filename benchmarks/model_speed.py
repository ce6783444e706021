"""AnyIR speed: inference latency and training-step time, and the ratio to PromptIR side by side.

    python benchmarks/model_speed.py --promptir /tmp/promptir --ratio-only --json out.json
    python benchmarks/model_speed.py --promptir /tmp/promptir     # ratio, then the settings table
    python benchmarks/model_speed.py --quick                       # nano + tiny table, fewer repeats
    python benchmarks/model_speed.py --profile tiny                # where tiny's CPU time goes

PromptIR side by side (``--promptir DIR``): DIR is a checkout of the official PromptIR repository
(github.com/va1shn9v/PromptIR, fetched by the user; nothing of it ships here); the script imports
``DIR/net/model.py`` (which needs ``einops``) and builds ``PromptIR(decoder=True)``, the network
the PromptIR paper trains (35.59 M parameters). When DIR, the file or einops is missing, the
comparison is skipped with a message saying what is missing. The two networks run interleaved
(PromptIR, AnyIR, PromptIR, AnyIR, ...) in one process with the same thread count, so load from
other processes hits both alike; the ratio of medians is PromptIR time / AnyIR time (higher is
better for AnyIR). Measured: inference 1x3x224x224 and 1x3x256x256 (no_grad, eval) and one
training step 4x3x128x128 (L1 loss + Adam: forward, backward, step). Default: 2 threads.

Settings of the table (per variant): ``default`` (what ``create_model`` builds: fast kernels and
the fast frequency path), ``faithful`` (fast kernels, Algorithm 2's FFTs as written),
``reference`` (the plain reference implementation with the FFTs: the network as first written),
``compile`` (torch.compile of the default; opt-in with --compile, minutes to compile on a CPU).
Timings are medians; on a shared, busy machine they are noisy — the script prints the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from anyir.model import AnyIR, variant_config

SETTINGS = ("default", "faithful", "reference", "compile")
RATIO_SIZES = (224, 256)
TRAIN_SHAPE = (4, 3, 128, 128)


def build(variant: str, setting: str, device: str = "cpu") -> torch.nn.Module:
    """The variant's model in a benchmark setting, on ``device``."""
    cfg = variant_config(variant)
    if setting in ("faithful", "reference"):
        cfg = replace(cfg, frequency_path="faithful")
    model = AnyIR(cfg, kernels="reference" if setting == "reference" else "fast").to(device)
    return torch.compile(model) if setting == "compile" else model


def load_promptir(directory: str | None) -> tuple[torch.nn.Module | None, str]:
    """``PromptIR(decoder=True)`` from ``directory/net/model.py``, or (None, why it was skipped)."""
    if not directory:
        return None, "no --promptir DIR given"
    path = Path(directory) / "net" / "model.py"
    if not path.is_file():
        return None, (f"{path} not found: clone https://github.com/va1shn9v/PromptIR and pass its "
                      "directory as --promptir DIR")
    if importlib.util.find_spec("einops") is None:
        return None, f"{path} needs the einops package: pip install einops"
    spec = importlib.util.spec_from_file_location("promptir_net_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PromptIR(decoder=True), "ok"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], None], device: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(steps: dict[str, Callable[[], None]], repeats: int, device: str) -> dict[str, dict]:
    """Run every step once to warm up, then ``repeats`` rounds in turn (A, B, A, B, ...).

    Returns per name the median wall and process-CPU seconds and the list of wall times.
    """
    for fn in steps.values():
        fn()
    walls: dict[str, list[float]] = defaultdict(list)
    cpus: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for name, fn in steps.items():
            wall, cpu = _timed(fn, device)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {
        name: {"wall": statistics.median(walls[name]), "cpu": statistics.median(cpus[name]), "walls": walls[name]}
        for name in steps
    }


def inference_step(model: torch.nn.Module, side: int, device: str) -> Callable[[], None]:
    """One no_grad forward pass of a 1x3xside x side image."""
    model.eval()
    x = torch.rand(1, 3, side, side, device=device)

    def step() -> None:
        with torch.no_grad():
            model(x)

    return step


def train_step(model: torch.nn.Module, device: str) -> Callable[[], None]:
    """One L1 + Adam step on a 4x3x128x128 batch (forward, backward, optimizer step)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    lq, gt = torch.rand(TRAIN_SHAPE, device=device), torch.rand(TRAIN_SHAPE, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.l1_loss(model(lq), gt).backward()
        opt.step()

    return step


def _ratio_row(task: str, times: dict[str, dict], names: tuple[str, str]) -> dict:
    base, other = (times[n] for n in names)
    spread = [round(b / a, 2) for b, a in zip(base["walls"], other["walls"], strict=True)]
    return {
        "task": task,
        f"{names[0]}_ms": round(1e3 * base["wall"]),
        f"{names[1]}_ms": round(1e3 * other["wall"]),
        "ratio": round(base["wall"] / other["wall"], 2),
        "ratio_per_round": spread,
        "median_round_ratio": round(statistics.median(spread), 2),
        f"{names[0]}_cpu_ms": round(1e3 * base["cpu"]),
        f"{names[1]}_cpu_ms": round(1e3 * other["cpu"]),
        "cpu_ratio": round(base["cpu"] / other["cpu"], 2),
    }


def compare_promptir(promptir: torch.nn.Module, args: argparse.Namespace) -> list[dict]:
    """PromptIR vs AnyIR-tiny (as ``create_model`` builds it), interleaved; one row per task."""
    from anyir.model import create_model

    names = ("promptir", "anyir_tiny")
    torch.manual_seed(0)
    anyir_model = create_model("tiny").to(args.device)
    promptir = promptir.to(args.device)
    rows = []
    for side in args.sizes:
        steps = {names[0]: inference_step(promptir, side, args.device),
                 names[1]: inference_step(anyir_model, side, args.device)}
        rows.append(_ratio_row(f"infer_1x3x{side}x{side}", interleaved(steps, args.repeats, args.device), names))
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_train:
        steps = {names[0]: train_step(promptir, args.device), names[1]: train_step(anyir_model, args.device)}
        rows.append(_ratio_row("train_4x3x128x128", interleaved(steps, args.train_repeats, args.device), names))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def settings_table(args: argparse.Namespace) -> list[dict]:
    """Median wall / CPU ms of every (variant, setting), settings of one variant interleaved."""
    rows = []
    for variant in args.variants:
        models = {setting: build(variant, setting, args.device) for setting in args.settings}
        per_setting: dict[str, dict] = {s: {"variant": variant, "setting": s} for s in args.settings}
        for side in args.sizes:
            steps = {s: inference_step(m, side, args.device) for s, m in models.items()}
            for s, t in interleaved(steps, args.repeats, args.device).items():
                per_setting[s][f"infer_{side}_ms"] = round(1e3 * t["wall"])
                per_setting[s][f"infer_{side}_cpu_ms"] = round(1e3 * t["cpu"])
        if not args.no_train:
            steps = {s: train_step(m, args.device) for s, m in models.items()}
            for s, t in interleaved(steps, args.train_repeats, args.device).items():
                per_setting[s]["train_4x128_ms"] = round(1e3 * t["wall"])
                per_setting[s]["train_4x128_cpu_ms"] = round(1e3 * t["cpu"])
        for row in per_setting.values():
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _category(name: str, shapes: list) -> str:
    """Bucket of a profiler op: FFT, conv kind, matrix products, norm, element-wise, memory."""
    if "fft" in name:
        return "fft"
    if "linear_pointwise" in name or name in ("aten::mm", "aten::addmm", "aten::addmm_"):
        return "1x1 conv (matrix product)"
    if "conv" in name:
        weight = shapes[1] if len(shapes) > 1 and len(shapes[1]) == 4 else None
        if weight is None:
            return "conv (other)"
        if weight[1] == 1 and weight[2] > 1:
            return "conv depthwise 3x3 (+ fused epilogue)"
        return "conv 1x1" if weight[2] == 1 else "conv dense 3x3"
    buckets = {
        "layer_norm": "layer norm", "var_mean": "statistics", "bmm": "attention / per-sample matmuls",
        "softmax": "attention / per-sample matmuls", "vector_norm": "attention / per-sample matmuls",
        "copy_": "copies/cat", "cat": "copies/cat", "clone": "copies/cat", "pad": "copies/cat",
        "gelu": "element-wise", "add": "element-wise", "mul": "element-wise", "sigmoid": "element-wise",
        "div": "element-wise", "sub": "element-wise", "sqrt": "element-wise", "rsub": "element-wise",
        "lerp": "element-wise", "pow": "element-wise", "sum": "statistics", "mean": "statistics",
    }
    return next((label for key, label in buckets.items() if key in name), "other")


def profile(variant: str, setting: str, side: int, device: str) -> dict[str, float]:
    """Share of self CPU time per op category for one forward pass (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = build(variant, setting, device).eval()
    x = torch.rand(1, 3, side, side, device=device)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (parsed only when run as a script)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--promptir", metavar="DIR", help="PromptIR checkout (holds net/model.py) to time side by side")
    p.add_argument("--ratio-only", action="store_true", help="only the PromptIR / AnyIR-tiny ratio (no table)")
    p.add_argument("--variants", nargs="+", default=["tiny", "small", "nano"], help="variants of the table")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=None, help="table settings (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds per inference measurement")
    p.add_argument("--train-repeats", type=int, default=3, help="interleaved rounds per training-step measurement")
    p.add_argument("--sizes", nargs="+", type=int, default=list(RATIO_SIZES), help="square inference sizes")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on CPU)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurements")
    p.add_argument("--quick", action="store_true", help="table of nano + tiny, 224 only, 2 rounds")
    p.add_argument("--profile", metavar="VARIANT", help="only profile VARIANT's forward at 224 by op category")
    p.add_argument("--json", metavar="PATH", help="also write everything measured as JSON")
    args = p.parse_args(argv)
    args.settings = args.settings or [s for s in SETTINGS if s != "compile" or args.compile]
    if args.quick:
        args.variants, args.sizes, args.repeats, args.train_repeats = ["nano", "tiny"], [224], 2, 2
    return args


def environment() -> dict:
    """What the figures were measured on."""
    return {
        "torch": torch.__version__, "python": platform.python_version(), "device": cpu_name(),
        "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 1), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def cpu_name() -> str:
    """CPU model name (Linux) or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment()
    print(f"# {json.dumps(env)} (shared machine: timings are noisy upper bounds)", flush=True)
    if args.profile:
        for setting in ("default", "reference"):
            print(setting, json.dumps(profile(args.profile, setting, 224, args.device)), flush=True)
        return
    result: dict = {"environment": env}
    promptir, why = load_promptir(args.promptir)
    if promptir is None:
        print(f"# PromptIR comparison skipped: {why}", file=sys.stderr, flush=True)
    else:
        n_params = sum(p.numel() for p in promptir.parameters())
        print(f"# PromptIR(decoder=True) from {args.promptir}: {n_params:,} params", flush=True)
        result["promptir_vs_tiny"] = compare_promptir(promptir, args)
        for row in result["promptir_vs_tiny"]:
            print(f"RATIO {row['task']}: PromptIR / AnyIR-tiny = {row['ratio']:.2f}x "
                  f"({row['promptir_ms']} ms / {row['anyir_tiny_ms']} ms wall, medians; per round "
                  f"{row['ratio_per_round']}; process CPU time ratio {row['cpu_ratio']:.2f}x)")
        del promptir
    if not args.ratio_only:
        result["settings"] = settings_table(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
