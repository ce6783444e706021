"""The result of one evaluation: aggregated rows plus the per-image values behind them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

AVERAGE_TASK = "average"


@dataclass(frozen=True)
class ResultRow:
    """Mean of one metric over the images of one (task, dataset) column."""

    task: str
    dataset: str
    metric: str
    value: float
    n: int
    protocol: str


@dataclass(frozen=True)
class ImageResult:
    """One metric on one test image."""

    task: str
    dataset: str
    key: str
    metric: str
    value: float


@dataclass
class EvalReport:
    """Everything :func:`anyir.eval.evaluate.evaluate` measured, and how it measured it."""

    rows: list[ResultRow]
    images: list[ImageResult]
    split: str
    tasks: list[str]
    recipe_name: str
    recipe_hash: str
    shard_dir: str
    protocol: str
    metrics: list[str]
    tile: int | None = None
    overlap: int = 32
    max_images: int | None = None
    skipped_metrics: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    expected: dict[str, int] = field(default_factory=dict)  # test images per task the manifest lists
    scored: dict[str, int] = field(default_factory=dict)  # test images per task actually scored
    problems: list[str] = field(default_factory=list)  # why it is incomplete (only with allow_incomplete)

    @property
    def complete(self) -> bool:
        """True when every listed test image was scored (the only kind of row a benchmark should show)."""
        return not self.problems and self.scored == self.expected

    def signature(self) -> dict[str, object]:
        """What makes two evaluations comparable; part of a leaderboard run id."""
        return {"protocol": self.protocol, "split": self.split, "tasks": sorted(self.tasks),
                "recipe_hash": self.recipe_hash, "metrics": sorted(self.metrics),
                "tile": self.tile, "overlap": self.overlap if self.tile else None,
                "max_images": self.max_images}

    def to_frame(self) -> pd.DataFrame:
        """Long table: task, dataset, metric, value, n, protocol."""
        return pd.DataFrame([asdict(r) for r in self.rows],
                            columns=["task", "dataset", "metric", "value", "n", "protocol"])

    def image_frame(self) -> pd.DataFrame:
        """Per-image long table: task, dataset, key, metric, value."""
        return pd.DataFrame([asdict(r) for r in self.images],
                            columns=["task", "dataset", "key", "metric", "value"])

    def table(self) -> pd.DataFrame:
        """One row per (task, dataset), one column per metric, plus the image count ``n``."""
        frame = self.to_frame()
        wide = frame.pivot_table(index=["task", "dataset"], columns="metric", values="value", sort=False)
        counts = frame.groupby(["task", "dataset"], sort=False)["n"].first()
        return wide.assign(n=counts).reset_index()

    def value(self, task: str, dataset: str, metric: str) -> float:
        """The aggregated value of one cell; KeyError naming the cell if absent."""
        for row in self.rows:
            if (row.task, row.dataset, row.metric) == (task, dataset, metric):
                return row.value
        raise KeyError(f"no result for task={task!r} dataset={dataset!r} metric={metric!r}")


def aggregate(images: list[ImageResult], protocols: dict[str, str], average_name: str) -> list[ResultRow]:
    """Mean per (task, dataset, metric), then an ``average/<average_name>`` row per metric.

    The average is taken over the (task, dataset) columns, as the papers average their table
    columns (each BSD68 sigma counts once), not over images.
    """
    if not images:
        return []
    frame = pd.DataFrame([asdict(r) for r in images])
    grouped = frame.groupby(["task", "dataset", "metric"], sort=False)["value"].agg(["mean", "count"])
    rows = [ResultRow(t, d, m, float(r["mean"]), int(r["count"]), protocols[m])
            for (t, d, m), r in grouped.iterrows()]
    columns = {(r.task, r.dataset) for r in rows}
    for metric in dict.fromkeys(r.metric for r in rows):
        values = [r.value for r in rows if r.metric == metric]
        rows.append(ResultRow(AVERAGE_TASK, average_name, metric, sum(values) / len(values),
                              len(columns), protocols[metric]))
    return rows
