"""The run folder is the record: each evaluation's results, as plain files inside the folder it scored.

    RUN/results/<run id>/
      record.json      what was evaluated (the leaderboard's run fields), how (the evaluation signature,
                       shard set, metrics) and whether it is complete (images expected / scored per task)
      results.parquet  task, dataset, metric, value, n, protocol  (one row per table cell and metric)
      images.parquet   task, dataset, key, metric, value          (one row per test image and metric)

``<run id>`` is the leaderboard's id of the run + evaluation, so evaluating the same thing again
replaces its folder, as logging it again replaces its rows. A folder is written under a temporary
name (``.tmp-<id>-<pid>``, each file fsynced) and renamed into place: whoever reads the folder
(``anyir leaderboard ingest``, possibly on another machine after a sync) sees a whole record or
none, never half of one. The DuckDB leaderboard is an index over these folders.

Evaluations without a run folder (the ``input`` baseline, a bare ``.safetensors`` file) keep their
record in the same layout under ``records/<name>/`` beside the leaderboard file they were logged to
(see :func:`anyir.pipeline.record_root`).

This module knows nothing of the leaderboard: the run fields arrive as a plain JSON mapping.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from anyir.eval.report import EvalReport
from anyir.process import pid_alive

RECORD_FORMAT = 1
RECORD_FILE = "record.json"
RESULTS_FILE = "results.parquet"
IMAGES_FILE = "images.parquet"
RESULT_COLUMNS = ["task", "dataset", "metric", "value", "n", "protocol"]
IMAGE_COLUMNS = ["task", "dataset", "key", "metric", "value"]


class RecordError(ValueError):
    """A record folder cannot be read; the message names the folder and what is wrong."""


@dataclass
class EvalRecord:
    """One evaluation as stored in (or read from) a record folder."""

    path: Path  # RUN/results/<run id>
    run_id: str
    run: dict[str, Any]  # the leaderboard's run fields (RunRecord as JSON)
    eval: dict[str, Any]  # evaluation_info(report)
    results: pd.DataFrame
    images: pd.DataFrame
    digest: str  # sha256 of record.json: a rewritten record has a new one

    @property
    def complete(self) -> bool:
        """True when every test image the manifest lists was scored."""
        return bool(self.eval.get("complete", True))


def evaluation_info(report: EvalReport) -> dict[str, Any]:
    """How an evaluation was made and whether it is complete (the leaderboard's ``eval`` column)."""
    return {**report.signature(), "shard_dir": report.shard_dir, "wall_time_s": report.wall_time_s,
            "skipped_metrics": report.skipped_metrics, "complete": report.complete,
            "expected": report.expected, "scored": report.scored, "problems": report.problems}


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_eval_record(results_dir: str | Path, run_id: str, run: dict[str, Any], report: EvalReport) -> EvalRecord:
    """Write ``results_dir/<run_id>/`` atomically (replacing an earlier record of the same id)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(results_dir)
    name = folder_name(run_id)
    final = results_dir / name
    tmp = results_dir / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    info = evaluation_info(report)
    results, images = report.to_frame()[RESULT_COLUMNS], report.image_frame()[IMAGE_COLUMNS]
    body = {"format": RECORD_FORMAT, "run_id": run_id, "written_at": datetime.now(timezone.utc).isoformat(),
            "host": socket.gethostname(), "run": run, "eval": info,
            "files": {"results": RESULTS_FILE, "images": IMAGES_FILE}}
    text = json.dumps(body, indent=1, sort_keys=True, default=str) + "\n"
    try:
        _write_file(tmp / RESULTS_FILE, lambda f: results.to_parquet(f, index=False))
        _write_file(tmp / IMAGES_FILE, lambda f: images.to_parquet(f, index=False))
        _write_file(tmp / RECORD_FILE, lambda f: f.write(text.encode("utf-8")))  # last: marks it whole
        if final.exists():  # replace an earlier record of the same run id
            old = results_dir / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(results_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EvalRecord(final, run_id, json.loads(text)["run"], json.loads(text)["eval"], results, images,
                      hashlib.sha256(text.encode("utf-8")).hexdigest())


def folder_name(run_id: str) -> str:
    """The record folder's name: the run id itself when it is a plain name, else a safe spelling of it
    plus a short hash (sweep cells have ids like ``sweep-1a2b/uniform-seed0``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id).lstrip(".") or "run"
    return safe if safe == run_id else f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def clean_stale(results_dir: Path) -> list[Path]:
    """Remove ``.tmp-*`` / ``.old-*`` folders that killed writers left (their pid, last in the name, is dead)."""
    removed = []
    for path in [*results_dir.glob(".tmp-*"), *results_dir.glob(".old-*")]:
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed




def peek_record(path: str | Path) -> tuple[str, str]:
    """(run id, sha256 of ``record.json``) of a record folder, without reading its result tables."""
    try:
        raw = (Path(path) / RECORD_FILE).read_bytes()
        return str(json.loads(raw)["run_id"]), hashlib.sha256(raw).hexdigest()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"{path}: unreadable {RECORD_FILE} ({type(exc).__name__}: {exc}); "
                          "re-run `anyir eval` for this run") from None


def read_eval_record(path: str | Path) -> EvalRecord:
    """Read a record folder written by :func:`write_eval_record`; RecordError naming what is wrong."""
    path = Path(path)
    try:
        raw = (path / RECORD_FILE).read_bytes()
        body = json.loads(raw)
        if body.get("format") != RECORD_FORMAT:
            raise RecordError(f"{path}: record format {body.get('format')!r}, this anyir reads {RECORD_FORMAT}; "
                              "upgrade anyir")
        results = pd.read_parquet(path / body["files"]["results"])
        images = pd.read_parquet(path / body["files"]["images"])
        missing = sorted(set(RESULT_COLUMNS) - set(results.columns)) + sorted(set(IMAGE_COLUMNS) - set(images.columns))
        if missing:
            raise RecordError(f"{path}: result files lack columns {missing}; re-run `anyir eval` for this run")
        return EvalRecord(path, str(body["run_id"]), dict(body["run"]), dict(body["eval"]),
                          results[RESULT_COLUMNS], images[IMAGE_COLUMNS], hashlib.sha256(raw).hexdigest())
    except RecordError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow errors are OSError/ValueError
        raise RecordError(f"{path}: unreadable record ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                          "re-run `anyir eval` for this run") from None


def find_eval_records(paths: Iterable[str | Path]) -> list[Path]:
    """Every finished record folder (``.../results/<id>/record.json``) under ``paths``, sorted.

    A path may be a record folder, a run folder, or any folder holding run folders (searched
    recursively). Temporary folders of writes in progress (``.tmp-*``) are never returned.
    """
    found: set[Path] = set()
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or folder")
        if (root / RECORD_FILE).is_file():
            candidates = [root / RECORD_FILE]
        else:
            candidates = root.rglob(RECORD_FILE)
        for file in candidates:
            folder = file.parent
            if folder.parent.name == "results" and not folder.name.startswith("."):
                found.add(folder)
    return sorted(found)
