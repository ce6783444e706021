"""Pictures of results: degraded / restored / clean grids, gain bars, balance-vs-PSNR panels.

People look before they read tables. Every function draws on a plain ``matplotlib.figure.Figure``
(no pyplot, no display, no global backend state), so it runs under Agg, in a notebook, in a test
and in ``anyir quickstart`` alike; :func:`figure_png` turns a figure into PNG bytes.

The grid scores each pair exactly as :func:`anyir.eval.evaluate.evaluate` does (same
:func:`eval_pair`, test noise seeded per key, same :func:`restore_array`, same metrics), so the
PSNR/SSIM in a panel's title equals that image's value in the leaderboard's ``image_results``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from anyir.data.reader import ShardReader
from anyir.data.samples import Sample, decode_sample
from anyir.data.shardset import ShardSet, as_shard_set
from anyir.eval.evaluate import column_dataset, eval_pair, restore_array
from anyir.eval.metrics import default_metrics, score_pair

PANEL_INCHES = 2.7  # one image panel; 256 px test crops show at about native size at 100 dpi
GRID_DPI = 100


@dataclass(frozen=True)
class GridRow:
    """One test image: the three pictures and the scores of the degraded and restored ones."""

    task: str
    column: str  # the result column's dataset label, e.g. ``demo_s25`` (see column_dataset)
    key: str
    degraded: np.ndarray  # uint8, cropped as scored
    restored: np.ndarray  # float32 in [0, 1]
    clean: np.ndarray  # uint8
    input_scores: dict[str, float]
    restored_scores: dict[str, float]


# ---------------------------------------------------------------------------- choosing and scoring


def pick_samples(shards: ShardSet | str | Path, tasks: Iterable[str] | None = None, per_task: int = 1,
                 split: str = "test") -> list[Sample]:
    """The first ``per_task`` samples of every result column (task, dataset, noise sigma), in manifest order.

    Only the picked samples are decoded; the others' metadata is read to find the columns.
    """
    if per_task < 1:
        raise ValueError(f"per_task: must be >= 1, got {per_task}")
    shard_set = as_shard_set(shards)
    available = shard_set.tasks(split)
    chosen = available if tasks is None else list(tasks)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(f"tasks: {unknown} not in the {split!r} split of {shard_set.root}; available: {available}")
    picked: dict[tuple, list[Sample]] = {}
    for raw in ShardReader(cache_size=1).iter_split(shard_set, split, chosen):
        column = (raw.meta["task"], raw.meta["dataset"], raw.meta.get("online_noise_sigma"))
        group = picked.setdefault(column, [])
        if len(group) < per_task:
            group.append(decode_sample(raw))
    return [sample for group in picked.values() for sample in group]


def grid_rows(model: nn.Module | None, shards: ShardSet | str | Path, tasks: Iterable[str] | None = None,
              per_task: int = 1, split: str = "test", tile: int | None = None, overlap: int = 32,
              device: str = "cpu") -> list[GridRow]:
    """Restore and score :func:`pick_samples` as the evaluation does (``model=None``: the input itself)."""
    metrics = default_metrics()
    if model is not None:
        model = model.to(device).eval()
    rows = []
    for sample in pick_samples(shards, tasks, per_task, split):
        degraded, clean = eval_pair(sample)
        restored = restore_array(model, degraded, tile, overlap, device)
        # The input is scored through restore_array(None, ...) as the ``input`` baseline is (float32).
        as_input = score_pair(restore_array(None, degraded), clean, metrics)
        rows.append(GridRow(sample.task, column_dataset(sample), sample.key, degraded, restored, clean,
                            as_input, score_pair(restored, clean, metrics)))
    return rows


# ---------------------------------------------------------------------------- drawing


def _scores(scores: dict[str, float]) -> str:
    return f"{scores['psnr']:.2f} dB / {scores['ssim']:.3f}"


def restoration_figure(rows: Sequence[GridRow], title: str | None = None) -> Figure:
    """One row per test image: degraded | restored | clean, PSNR/SSIM of the first two in their titles."""
    if not rows:
        raise ValueError("restoration_figure: no test images to draw (empty shard split?)")
    fig = Figure(figsize=(3 * PANEL_INCHES, len(rows) * (PANEL_INCHES + 0.35)), dpi=GRID_DPI, layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        gain = row.restored_scores["psnr"] - row.input_scores["psnr"]
        panels = ((row.degraded, f"degraded  {_scores(row.input_scores)}", "black"),
                  (row.restored, f"restored  {_scores(row.restored_scores)}  ({gain:+.2f} dB)",
                   "darkgreen" if gain > 0 else "darkred"),
                  (row.clean, "clean (reference)", "black"))
        for ax, (image, text, colour) in zip(ax_row, panels, strict=True):
            ax.imshow(image, interpolation="nearest")
            ax.set_title(text, fontsize=8, color=colour)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(f"{row.task} / {row.column}\n{row.key}", fontsize=7)
    what = "degraded / restored / clean test images (PSNR / SSIM as the leaderboard scores them)"
    fig.suptitle(f"{title}: {what}" if title else what, fontsize=10)
    return fig


def restoration_grid(model: nn.Module | None, shards: ShardSet | str | Path, out_png: str | Path,
                     tasks: Iterable[str] | None = None, per_task: int = 1, split: str = "test",
                     tile: int | None = None, overlap: int = 32, device: str = "cpu",
                     title: str | None = None) -> Path:
    """Write the degraded / restored / clean grid of :func:`grid_rows` to ``out_png``; return its path."""
    rows = grid_rows(model, shards, tasks, per_task, split, tile, overlap, device)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(figure_png(restoration_figure(rows, title)))
    return out


def gain_figure(gains: pd.DataFrame, runs: Sequence[str] | None = None, metric: str = "psnr") -> Figure:
    """Bars of the gain over the degraded input per result column, one bar colour per run.

    ``gains`` has columns ``name, task, dataset, metric, gain_over_input`` (the leaderboard query
    ``gains_over_input``); ``runs`` picks and orders the run names shown (default: all). With one
    run the bars are green where it helps and red where it hurts.
    """
    frame = gains[gains["metric"] == metric]
    runs = list(runs) if runs is not None else list(dict.fromkeys(frame["name"]))
    frame = frame[frame["name"].isin(runs)]
    if frame.empty:
        raise ValueError(f"gain_figure: no {metric} gains for runs {runs}")
    columns = sorted(dict.fromkeys(zip(frame["task"], frame["dataset"], strict=True)),
                     key=lambda c: (c[0] == "average", c))
    fig = Figure(figsize=(max(6.0, 1.1 * len(columns) + 1.5), 3.8), dpi=GRID_DPI, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(runs)
    x = np.arange(len(columns))
    for i, run in enumerate(runs):
        part = frame[frame["name"] == run].set_index(["task", "dataset"])["gain_over_input"]
        values = np.array([part.get(c, np.nan) for c in columns], dtype=float)
        colour = [("tab:green" if v > 0 else "tab:red") for v in values] if len(runs) == 1 else None
        bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, values, width, label=run, color=colour)
        if len(runs) <= 2:  # more labels than that overlap
            ax.bar_label(bars, fmt="%+.2f", fontsize=7, padding=2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{t}\n{d}" for t, d in columns], fontsize=8)
    ax.set_ylabel(f"{metric.upper()} gain over the input" + (" (dB)" if metric == "psnr" else ""))
    ax.set_title("what the model adds over the degraded input, per task (higher is better)", fontsize=10)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    return fig


def balance_figure(points: pd.DataFrame) -> Figure:
    """Per task: its PSNR against its weight in the training mixture, one point per group of runs.

    ``points`` has one row per (run, task): ``task, group, weight, psnr``. Runs of one ``group``
    (e.g. the seeds of one sweep cell) are averaged: the point is their mean, the error bar their
    standard deviation, and the legend says how many runs it holds.
    """
    if points.empty:
        raise ValueError("balance_figure: no (task, weight, psnr) points")
    stats = points.groupby(["task", "group"], sort=False).agg(
        weight=("weight", "mean"), psnr=("psnr", "mean"), sd=("psnr", "std"), n=("psnr", "size")).reset_index()
    tasks = list(dict.fromkeys(stats["task"]))
    groups = list(dict.fromkeys(stats["group"]))
    fig = Figure(figsize=(2.8 * len(tasks), 3.2), dpi=GRID_DPI, layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    colours = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    right = min(1.0, 1.25 * float(stats["weight"].max()))  # one weight axis for all panels, from 0
    for ax, task in zip(axes, tasks, strict=True):
        for r in stats[stats["task"] == task].itertuples():
            label = f"{r.group} (n={r.n})" if r.n > 1 else r.group
            ax.errorbar(r.weight, r.psnr, yerr=0.0 if np.isnan(r.sd) else r.sd, fmt="o", capsize=3,
                        color=colours[r.group], label=label)
        ax.set_xlim(0.0, right)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("weight in the mixture", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("PSNR on the task (dB)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=min(len(groups), 4))
    fig.suptitle("does a larger share of the mixture buy PSNR on that task?", fontsize=10)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (no timestamp or version in the metadata: same figure, same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# ---------------------------------------------------------------------------- paths recorded in a leaderboard


def resolve_recorded_path(value: str | None, leaderboard: str | Path) -> Path | None:
    """An existing path that a leaderboard row recorded, or None.

    Current rows hold absolute paths. Files written by older versions may hold paths relative to
    the folder the command ran in (``shards/demo``); those are tried relative to the project
    folder above the leaderboard file (``<project>/leaderboard/leaderboard.duckdb``), then to the
    leaderboard's own folder, then to the current directory.
    """
    if not value:
        return None
    path = Path(value)
    if path.is_absolute():
        return path if path.exists() else None
    db = Path(leaderboard).resolve()
    for base in (db.parent.parent, db.parent, Path.cwd()):
        if (base / path).exists():
            return (base / path).resolve()
    return None
