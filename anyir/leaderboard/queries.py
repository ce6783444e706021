"""Read-side queries: paper-style tables, run comparisons, exports. All take an open connection."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

from anyir.leaderboard.schema import RUN_TABLES

# Column order of the papers' tables; unknown tasks follow alphabetically, the average comes last.
TASK_ORDER = ("dehaze", "derain", "denoise", "deblur", "lowlight", "low", "haze", "rain", "snow",
              "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain",
              "low_haze_snow", "average")


def _natural(text: str) -> tuple:
    """Sort key that puts ``bsd68_s5`` before ``bsd68_s15``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _column_key(column: str) -> tuple:
    task, _, dataset = column.partition("/")
    rank = TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER) - 1
    return (rank, task, _natural(dataset))


def resolve_run(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """A run id from an id or a name (the newest local run of that name wins over published ones)."""
    if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [ref]).fetchone():
        return ref
    rows = con.execute("SELECT run_id, origin FROM runs WHERE name = ? "
                       "ORDER BY origin = 'local' DESC, created_at DESC", [ref]).fetchall()
    if not rows:
        raise KeyError(f"run {ref!r}: no run with that id or name; see `anyir leaderboard show`")
    local = [r for r in rows if r[1] == "local"]
    if not local and len(rows) > 1:
        raise KeyError(f"run {ref!r} names {len(rows)} published runs; pass one id: {[r[0] for r in rows]}")
    return rows[0][0]


def paper_table(con: duckdb.DuckDBPyConnection, setting: str | None = None,
                origin: str | None = None) -> pd.DataFrame:
    """One row per run, columns ``(task/dataset, psnr|ssim)`` in paper order (wide, numeric)."""
    where, params = ["1 = 1"], []
    if setting is not None:
        where.append("setting = ?")
        params.append(setting)
    if origin is not None:
        where.append("origin = ?")
        params.append(origin)
    cells = con.execute(f"SELECT * FROM paper_cells WHERE {' AND '.join(where)}", params).df()
    if cells.empty:
        return pd.DataFrame()
    info = cells.groupby("run_id", sort=False)[["name", "origin", "setting", "params"]].first()
    wide = cells.pivot_table(index="run_id", columns="column_name", values=["psnr", "ssim"]).swaplevel(0, 1, axis=1)
    columns = sorted(wide.columns.get_level_values(0).unique(), key=_column_key)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([columns, ["psnr", "ssim"]]))
    info.columns = pd.MultiIndex.from_product([info.columns, [""]])
    return _order_rows(info.join(wide).reset_index(), columns).reset_index(drop=True)


def _order_rows(wide: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Published rows first (weakest average first, as papers list them), then local runs."""
    average = [c for c in columns if c.startswith("average/")]
    score = wide[(average[0], "psnr")] if average else pd.Series(0.0, index=wide.index)
    order = pd.DataFrame({"local": wide[("origin", "")] == "local", "setting": wide[("setting", "")],
                          "score": score})
    return wide.loc[order.sort_values(["setting", "local", "score"], na_position="first").index]


def format_cells(wide: pd.DataFrame) -> pd.DataFrame:
    """Paper-style strings: ``31.70/.982`` per column; '-' where a value is missing."""
    if wide.empty:
        return wide
    out = pd.DataFrame({c[0]: wide[c] for c in wide.columns if c[1] == ""})  # run_id, name, ...
    for column in dict.fromkeys(c[0] for c in wide.columns if c[1] in ("psnr", "ssim")):
        out[column] = [_cell(p, s) for p, s in zip(wide[(column, "psnr")], wide[(column, "ssim")], strict=True)]
    out["params"] = [f"{p / 1e6:.2f}M" if pd.notna(p) and p else "-" for p in out["params"]]
    return out.reset_index(drop=True)


def _cell(psnr: float, ssim: float) -> str:
    p = "-" if pd.isna(psnr) else f"{psnr:.2f}"
    s = "-" if pd.isna(ssim) else f"{ssim:.3f}".lstrip("0")
    return f"{p}/{s}"


def compare_runs(con: duckdb.DuckDBPyConnection, refs: list[str]) -> pd.DataFrame:
    """Values of every run per (task, dataset, metric) and the delta of each run vs the first."""
    if len(refs) < 2:
        raise ValueError(f"compare needs at least two runs, got {refs}")
    ids = [resolve_run(con, ref) for ref in refs]
    labels = _unique_labels(con, ids)
    long = con.execute("SELECT run_id, task, dataset, metric, value FROM results WHERE run_id IN "
                       f"({', '.join('?' * len(ids))})", ids).df()
    wide = long.pivot_table(index=["task", "dataset", "metric"], columns="run_id", values="value")
    wide = wide.reindex(columns=ids).rename(columns=dict(zip(ids, labels, strict=True)))
    for label in labels[1:]:
        wide[f"delta {label}"] = wide[label] - wide[labels[0]]
    wide = wide.reset_index()
    wide.columns.name = None
    key = wide["task"] + "/" + wide["dataset"]
    return wide.iloc[sorted(range(len(wide)), key=lambda i: (_column_key(key.iloc[i]), wide["metric"].iloc[i]))]


def _unique_labels(con: duckdb.DuckDBPyConnection, ids: list[str]) -> list[str]:
    names = [con.execute("SELECT name FROM runs WHERE run_id = ?", [i]).fetchone()[0] for i in ids]
    return [n if names.count(n) == 1 else f"{n} [{i}]" for n, i in zip(names, ids, strict=True)]


def export_parquet(con: duckdb.DuckDBPyConnection, out_dir: str | Path) -> list[Path]:
    """Write every table as ``<out_dir>/<table>.parquet``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in ("runs", *RUN_TABLES[:-1]):
        path = out_dir / f"{table}.parquet"
        # COPY cannot take a parameter for its target; the path is quoted for SQL instead.
        quoted = str(path).replace("'", "''")
        con.execute(f"COPY (SELECT * FROM {table}) TO '{quoted}' (FORMAT PARQUET)")
        paths.append(path)
    return paths


def gains_over_input(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per local run and column: value minus the ``input`` baseline evaluated on the same recipe."""
    return con.execute("""
        SELECT r.name, r.run_id, x.task, x.dataset, x.metric, x.value,
               x.value - b.value AS gain_over_input
        FROM runs r JOIN results x USING (run_id)
        JOIN runs ri ON ri.variant = 'input' AND ri.origin = 'local' AND ri.recipe_hash = r.recipe_hash
        JOIN results b ON b.run_id = ri.run_id AND b.task = x.task AND b.dataset = x.dataset
                       AND b.metric = x.metric
        WHERE r.origin = 'local' AND r.variant <> 'input'
        ORDER BY r.name, x.task, x.dataset, x.metric""").df()


def published_values(con: duckdb.DuckDBPyConnection, methods: list[str], citation_like: str = "%") -> pd.DataFrame:
    """Published values (setting, method, task, dataset, metric, value) of the named methods."""
    marks = ", ".join("?" * len(methods))
    return con.execute(f"""
        SELECT r.setting, r.name AS method, x.task, x.dataset, x.metric, x.value
        FROM runs r JOIN results x USING (run_id)
        WHERE r.origin = 'published' AND r.name IN ({marks}) AND r.citation LIKE ?""",
                       [*methods, citation_like]).df()


def sweep_run_names(con: duckdb.DuckDBPyConnection, sweep_id: str) -> set[str]:
    """Names of the runs of one sweep already in the leaderboard."""
    return {r[0] for r in con.execute("SELECT name FROM runs WHERE sweep_id = ?", [sweep_id]).fetchall()}


def settings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every setting that has runs, sorted."""
    return [r[0] for r in con.execute("SELECT DISTINCT setting FROM runs WHERE setting IS NOT NULL ORDER BY 1").fetchall()]
