"""Figures of a benchmark track: the ranking with error bars, and the weight trajectories of its
adaptive submissions.

Both take plain DataFrames (what :mod:`anyir.leaderboard.tracks` returns and the leaderboard's
``balance_trajectory`` rows), so the notebook only queries and calls them.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

BASELINE_COLOUR = "black"
SUBMISSION_COLOUR = "tab:blue"


def _display_label(row) -> str:
    """``label (n=3) *``: the seed count, and a star only where the verdict is a significant difference."""
    star = " *" if "*" in str(row.verdict) else ""
    return f"{row.label} (n={int(row.seeds)}){star}"


def track_ranking_figure(table: pd.DataFrame, runs: pd.DataFrame | None = None, title: str | None = None) -> Figure:
    """One row per submission, best on top: mean score ± sd over seeds (error bar), each seed's score
    as a dot, the baseline in black with its mean as a dashed line; a star marks a difference the
    Welch test found significant (``verdict`` of :func:`anyir.leaderboard.tracks.rank_submissions`).

    ``table`` needs label, score, sd, seeds, verdict; ``runs`` (optional) label and psnr per seed.
    """
    if table.empty:
        raise ValueError("track_ranking_figure: the ranking has no submission; run `anyir bench run` first")
    ordered = table.sort_values("score", ascending=True).reset_index(drop=True)  # best at the top
    fig = Figure(figsize=(7.5, 0.9 + 0.45 * len(ordered)), layout="constrained")
    ax = fig.subplots()
    for y, row in enumerate(ordered.itertuples(index=False)):
        baseline = row.verdict == "baseline"
        colour = BASELINE_COLOUR if baseline else SUBMISSION_COLOUR
        ax.errorbar(row.score, y, xerr=row.sd, fmt="s" if baseline else "o", color=colour, capsize=4,
                    markersize=7, zorder=3)
        if runs is not None and len(runs):
            seeds = runs.loc[runs["label"] == row.label, "psnr"]
            ax.scatter(seeds, [y] * len(seeds), s=12, color=colour, alpha=0.45, zorder=2)
        if baseline:
            ax.axvline(row.score, color=BASELINE_COLOUR, linestyle="--", linewidth=0.8, zorder=1)
    ax.set_yticks(range(len(ordered)), [_display_label(r) for r in ordered.itertuples(index=False)], fontsize=8)
    for tick, row in zip(ax.get_yticklabels(), ordered.itertuples(index=False), strict=True):
        if row.verdict == "baseline":
            tick.set_fontweight("bold")
    ax.set_xlabel("score: mean PSNR over the track's columns (dB), mean ± sd over seeds")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "track ranking (black: baseline; * Welch-significant vs baseline)", fontsize=9)
    return fig


def weight_trajectories_figure(trajectory: pd.DataFrame, max_panels: int = 6, title: str | None = None) -> Figure:
    """One panel per group (a submission): each task's weight against the training step, the mean over
    the group's seeds as a line, shaded between the seeds' smallest and largest weight.

    ``trajectory`` needs group, seed, step, task, weight; groups keep their first-seen order and at
    most ``max_panels`` are drawn.
    """
    if trajectory.empty:
        raise ValueError("weight_trajectories_figure: no trajectory rows (static balances have none that move)")
    groups = list(dict.fromkeys(trajectory["group"]))[:max_panels]
    fig = Figure(figsize=(4.2 * len(groups), 3.2), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    tasks = sorted(trajectory["task"].unique())
    for ax, group in zip(axes, groups, strict=True):
        part = trajectory[trajectory["group"] == group]
        for i, task in enumerate(tasks):
            steps = part[part["task"] == task].groupby("step")["weight"].agg(["mean", "min", "max"])
            if steps.empty:
                continue
            colour = f"C{i % 10}"
            ax.plot(steps.index, steps["mean"], "-", color=colour, label=task)
            ax.fill_between(steps.index, steps["min"], steps["max"], color=colour, alpha=0.2, linewidth=0)
        seeds = part["seed"].nunique()
        ax.set_title(f"{group} ({seeds} seed{'s' if seeds != 1 else ''})", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("task weight")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
