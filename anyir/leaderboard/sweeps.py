"""Balance sweeps in the leaderboard: per-task metrics per balance, mean and spread over seeds.

A sweep is the set of local runs sharing a ``sweep_id``; each run's balance spec is
``runs.balance->>'spec'``. A balance differs from the reference balance *significantly* when
Welch's two-sided t-test on the per-seed values says so at the stated ``level`` (default 0.95):
the t quantile is taken at the Welch-Satterthwaite degrees of freedom (see
:mod:`anyir.leaderboard.stats`), so with 2 seeds per side the bar is about 4.3 standard errors,
not 2. It needs at least 2 seeds on each side and some seed spread; otherwise nothing is marked.
Make a claim only from 3 or more seeds per side: with 2, df is below 2 and one odd seed decides.
"""

from __future__ import annotations

import math

import duckdb
import pandas as pd

from anyir.leaderboard.stats import welch

SWEEP_ROWS = """
    SELECT r.run_id, r.name, coalesce(r.balance->>'spec', 'default') AS balance, r.seed,
           x.task, x.dataset, x.metric, x.value
    FROM runs r JOIN results x USING (run_id)
    WHERE r.sweep_id = ? AND r.origin = 'local' AND x.metric IN ('psnr', 'ssim')
"""


def sweep_runs(con: duckdb.DuckDBPyConnection, sweep_id: str) -> pd.DataFrame:
    """Long rows (run, balance, seed, task, dataset, metric, value) of one sweep, plus an
    ``average/all`` row per run and metric (mean over the run's task columns)."""
    rows = con.execute(SWEEP_ROWS, [sweep_id]).df()
    if rows.empty:
        raise LookupError(f"no runs with sweep id {sweep_id!r}; list sweeps with `anyir leaderboard sweeps`")
    per_task = rows[rows.task != "average"]
    avg = (per_task.groupby(["run_id", "name", "balance", "seed", "metric"], as_index=False)["value"].mean()
           .assign(task="average", dataset="all"))
    return pd.concat([per_task, avg[rows.columns]], ignore_index=True)


def aggregate_sweep(rows: pd.DataFrame, reference: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """Mean, sd and seed count per (balance, task, dataset, metric); delta to ``reference`` with
    Welch's p-value and a ``significant`` flag at ``level`` (see the module docstring).
    ``reference`` defaults to the first balance."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} must be in (0, 1), e.g. 0.95")
    stats = (rows.groupby(["balance", "task", "dataset", "metric"], sort=False)["value"]
             .agg(mean="mean", sd="std", seeds="count").reset_index())
    stats["sd"] = stats["sd"].fillna(0.0)
    reference = reference or str(rows["balance"].iloc[0])
    if reference not in set(stats.balance):
        raise ValueError(f"reference balance {reference!r} is not in this sweep: {sorted(set(stats.balance))}")
    ref = stats[stats.balance == reference].set_index(["task", "dataset", "metric"])
    deltas, p_values, flags = [], [], []
    for row in stats.itertuples(index=False):
        base = ref.loc[(row.task, row.dataset, row.metric)] if (row.task, row.dataset, row.metric) in ref.index else None
        if base is None or row.balance == reference:
            deltas.append(0.0 if base is not None else math.nan)
            p_values.append(math.nan)
            flags.append(False)
            continue
        test = welch(row.mean, row.sd, int(row.seeds), base["mean"], base["sd"], int(base["seeds"]), level)
        deltas.append(test.delta)
        p_values.append(test.p_value)
        flags.append(test.significant)
    return stats.assign(delta=deltas, p_value=p_values, significant=flags, reference=reference, level=level)


def sweep_table(aggregated: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """Wide table: one row per balance, one column per task/dataset, cells 'mean ± sd (Δ)' with a '*'
    where the difference to the reference balance is significant (Welch's t-test, module docstring)."""
    part = aggregated[aggregated.metric == metric].copy()
    digits = 2 if metric == "psnr" else 4
    part["column"] = part.task + "/" + part.dataset

    def cell(r: pd.Series) -> str:
        text = f"{r['mean']:.{digits}f} ± {r['sd']:.{digits}f}"
        if r["balance"] != r["reference"] and r["delta"] == r["delta"]:
            text += f" ({r['delta']:+.{digits}f}{'*' if r['significant'] else ''})"
        return text

    part["cell"] = part.apply(cell, axis=1)
    wide = part.pivot(index="balance", columns="column", values="cell")
    order = [b for b in dict.fromkeys(aggregated.balance)]
    cols = sorted((c for c in wide.columns if not c.startswith("average/")), key=str) + \
        [c for c in wide.columns if c.startswith("average/")]
    return wide.loc[order, cols]


def list_sweeps(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Sweep ids with their run counts, balances and seeds."""
    return con.execute("""
        SELECT sweep_id, count(*) AS runs, count(DISTINCT balance->>'spec') AS balances,
               count(DISTINCT seed) AS seeds, min(created_at) AS started
        FROM runs WHERE sweep_id IS NOT NULL GROUP BY sweep_id ORDER BY started""").df()
