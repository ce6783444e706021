"""Benchmark tracks in the leaderboard: one score per run, one ranked row per submission.

A run of a track (``anyir bench run``) carries ``track_id``, ``track_hash`` and ``submission_id``.
Its **score** is the mean PSNR over the track's result columns (SSIM beside it), as the papers
average their table columns. A submission's row is the mean and the sample standard deviation of
its seeds' scores. Only runs under one track hash are ranked together (the current file's; the
others are counted as left out): a changed track never mixes with old results.

A submission beats the baseline when Welch's two-sided t-test (:func:`anyir.leaderboard.stats.welch`,
t quantile at the Welch-Satterthwaite df) is significant at the track's level, and only with at
least the track's number of seeds on both sides; with fewer the p-value is shown and no claim is
made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from anyir.leaderboard.stats import welch

SCORE_COLUMN = "score/track"  # the per-run score as a pseudo column of the per-column table

TRACK_ROWS = """
    SELECT r.run_id, r.submission_id, r.submission, r.track_hash, r.seed, r.created_at,
           x.task, x.dataset, x.metric, x.value
    FROM runs r JOIN results x USING (run_id)
    WHERE r.origin = 'local' AND r.track_id = ? AND x.metric IN ('psnr', 'ssim') AND x.task <> 'average'
"""


@dataclass(frozen=True)
class RunScore:
    """A run's score over a track's columns, and the columns it lacks (then the score is NaN)."""

    psnr: float
    ssim: float
    columns: list[str]
    missing: list[str]


def run_score(frame: pd.DataFrame, columns: list[str] | str = "all") -> RunScore:
    """Mean PSNR and SSIM over ``columns`` (``task/dataset``; ``"all"``: every column but the average)
    of one run's long results (task, dataset, metric, value)."""
    rows = frame[frame.task != "average"]
    have = sorted(set(rows.task + "/" + rows.dataset))
    wanted = have if columns == "all" else list(columns)
    missing = sorted(set(wanted) - set(have))
    chosen = rows[(rows.task + "/" + rows.dataset).isin(wanted)]

    def mean(metric: str) -> float:
        values = chosen[chosen.metric == metric]
        return float(values.value.mean()) if len(values) and not missing else float("nan")

    return RunScore(mean("psnr"), mean("ssim"), wanted, missing)


def submission_run_ids(con: duckdb.DuckDBPyConnection, track_id: str, track_hash: str, submission_id: str) -> set[str]:
    """Run ids logged for one submission under one track hash."""
    rows = con.execute("SELECT run_id FROM runs WHERE track_id = ? AND track_hash = ? AND submission_id = ?",
                       [track_id, track_hash, submission_id]).fetchall()
    return {r[0] for r in rows}


def list_tracks(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Track ids in the leaderboard with their hashes, submissions and runs."""
    return con.execute("""
        SELECT track_id, track_hash, count(DISTINCT submission_id) AS submissions, count(*) AS runs,
               max(created_at) AS newest
        FROM runs WHERE track_id IS NOT NULL GROUP BY track_id, track_hash ORDER BY track_id, newest""").df()


@dataclass
class TrackRanking:
    """The ranking of one track version, and what was left out of it."""

    track_id: str
    track_hash: str
    baseline: str | None  # submission id of the baseline (None: not run yet)
    table: pd.DataFrame  # one row per submission, best first
    runs: pd.DataFrame  # one row per ranked run: submission_id, label, seed, psnr, ssim
    older_runs: int = 0  # runs of this track under other hashes (left out)
    incomplete: list[str] = field(default_factory=list)  # run ids lacking a score column (left out)
    columns: list[str] = field(default_factory=list)


def _labels(rows: pd.DataFrame) -> dict[str, dict]:
    """submission id -> its submission JSON (label, baseline flag, ...), from its newest run."""
    out: dict[str, dict] = {}
    for sub, text in rows.sort_values("created_at")[["submission_id", "submission"]].itertuples(index=False):
        out[sub] = json.loads(text) if isinstance(text, str) else dict(text or {})
    return out


def track_ranking(con: duckdb.DuckDBPyConnection, track_id: str, track_hash: str | None = None,
                  columns: list[str] | str = "all", level: float = 0.95, min_seeds: int = 3,
                  baseline: str | None = None) -> TrackRanking:
    """Rank the submissions of ``track_id`` under ``track_hash`` (default: the newest hash logged).

    ``baseline`` is the baseline's submission id (default: the submission logged as the baseline).
    LookupError when the track has no runs.
    """
    rows = con.execute(TRACK_ROWS, [track_id]).df()
    if rows.empty:
        raise LookupError(f"no runs of track {track_id!r} in the leaderboard; run `anyir bench run {track_id} "
                          "--balance uniform` first")
    if track_hash is None:
        track_hash = str(rows.sort_values("created_at").track_hash.iloc[-1])
    older = int(rows[rows.track_hash != track_hash].run_id.nunique())
    rows = rows[rows.track_hash == track_hash]
    if rows.empty:
        raise LookupError(f"track {track_id!r}: no runs under its current hash {track_hash} ({older} run(s) under "
                          f"older versions of the track are left out); rerun the submissions with `anyir bench run`")
    subs = _labels(rows)
    wanted = sorted(set(rows.task + "/" + rows.dataset)) if columns == "all" else list(columns)
    scores, incomplete = [], []
    for (run_id, sub, seed), part in rows.groupby(["run_id", "submission_id", "seed"]):
        score = run_score(part, wanted)
        if score.missing:
            incomplete.append(str(run_id))
            continue
        scores.append({"run_id": run_id, "submission_id": sub, "label": subs[sub].get("label", sub),
                       "seed": int(seed), "psnr": score.psnr, "ssim": score.ssim})
    runs = pd.DataFrame(scores, columns=["run_id", "submission_id", "label", "seed", "psnr", "ssim"])
    if baseline is None:
        flagged = [s for s, info in subs.items() if info.get("baseline")]
        baseline = flagged[0] if flagged else None
    table = rank_submissions(runs, baseline, level, min_seeds)
    return TrackRanking(track_id, track_hash, baseline, table, runs, older, sorted(incomplete), wanted)


def rank_submissions(runs: pd.DataFrame, baseline: str | None, level: float = 0.95, min_seeds: int = 3) -> pd.DataFrame:
    """One row per submission (best mean score first): score mean/sd over seeds, SSIM, delta to the
    baseline with Welch's p and a verdict (module docstring)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} must be in (0, 1), e.g. 0.95")
    stats = (runs.groupby(["submission_id", "label"], sort=False)
             .agg(score=("psnr", "mean"), sd=("psnr", "std"), seeds=("psnr", "count"),
                  ssim=("ssim", "mean"), ssim_sd=("ssim", "std")).reset_index().fillna({"sd": 0.0, "ssim_sd": 0.0}))
    base = stats[stats.submission_id == baseline].iloc[0] if baseline in set(stats.submission_id) else None
    deltas, p_values, verdicts = [], [], []
    for row in stats.itertuples(index=False):
        if base is None:
            deltas.append(float("nan"))
            p_values.append(float("nan"))
            verdicts.append("no baseline run yet")
            continue
        if row.submission_id == baseline:
            deltas.append(0.0)
            p_values.append(float("nan"))
            verdicts.append("baseline")
            continue
        test = welch(row.score, row.sd, int(row.seeds), base["score"], base["sd"], int(base["seeds"]), level)
        deltas.append(test.delta)
        p_values.append(test.p_value)
        verdicts.append(_verdict(test, int(row.seeds), int(base["seeds"]), min_seeds))
    stats = stats.assign(delta=deltas, p_value=p_values, verdict=verdicts)
    stats = stats.sort_values(["score", "label"], ascending=[False, True]).reset_index(drop=True)
    stats.insert(0, "rank", range(1, len(stats) + 1))
    return stats


def _verdict(test, n: int, n_base: int, min_seeds: int) -> str:
    """``beats baseline*`` / ``below baseline*`` / ``no significant difference`` / why no claim is made."""
    if min(n, n_base) < min_seeds:
        return f"no claim: needs {min_seeds} seeds on both sides (has {n} and {n_base})"
    if test.reason is not None:
        return "no claim: " + test.reason.removeprefix("not testable: ")
    if not test.significant:
        return "no significant difference"
    return "beats baseline*" if test.delta > 0 else "below baseline*"


def column_rows(con: duckdb.DuckDBPyConnection, ranking: TrackRanking) -> pd.DataFrame:
    """Long rows (balance = submission label, seed, task, dataset, metric, value) of the ranked runs over
    the track's columns, plus the run's score as the column ``score/track``: the input of
    :func:`anyir.leaderboard.sweeps.aggregate_sweep` for a per-column table."""
    rows = con.execute(TRACK_ROWS, [ranking.track_id]).df()
    rows = rows[rows.run_id.isin(ranking.runs.run_id) & (rows.task + "/" + rows.dataset).isin(ranking.columns)]
    labels = dict(zip(ranking.runs.run_id, ranking.runs.label, strict=True))
    per_column = rows.assign(balance=rows.run_id.map(labels))[["run_id", "balance", "seed", "task", "dataset",
                                                                "metric", "value"]]
    task, dataset = SCORE_COLUMN.split("/")
    score = pd.concat([
        ranking.runs.assign(balance=ranking.runs.label, task=task, dataset=dataset, metric=metric, value=ranking.runs[metric])
        for metric in ("psnr", "ssim")])[per_column.columns]
    return pd.concat([per_column, score], ignore_index=True)
