"""Build a shard set from a recipe: scan sources, write WebDataset tars per task and split, then
the manifest.

Reproducible by construction: items sorted by key, every random choice seeded by the key, tar
headers with mtime 0 and fixed owner/mode, each shard built independently of the others (so the
bytes do not depend on ``workers``). Shards are written under a temporary name and renamed; the
old manifest is removed first and the new one written last, so an interrupted build never leaves
a manifest that references a partial shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
import tarfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from anyir import __version__
from anyir.data.images import ImageReadError, encode_png
from anyir.data.manifest import MANIFEST_NAME, Manifest, RejectionRecord, ShardInfo, TaskSplit, write_manifest
from anyir.data.recipe import Recipe
from anyir.data.sources.base import Rejection, WorkItem
from anyir.data.sources.materialize import SampleError, materialize
from anyir.degrade.seeding import seed_from_key

SHARD_NAME = re.compile(r"^(train|test)-\d{6}\.tar$")


class BuildError(RuntimeError):
    """The build cannot produce a usable shard set (an empty task, or rejections with --strict)."""


@dataclass(frozen=True)
class ShardJob:
    """One tar file to write: its items, in key order."""

    task: str
    split: str
    index: int
    items: tuple[WorkItem, ...]
    seed: int
    compress_level: int
    out_dir: str

    @property
    def relpath(self) -> str:
        """``<task>/<split>-NNNNNN.tar``, relative to the shard set folder."""
        return f"{self.task}/{self.split}-{self.index:06d}.tar"


@dataclass
class ShardResult:
    """What a worker reports back for one job."""

    job: ShardJob
    info: ShardInfo | None
    datasets: Counter = field(default_factory=Counter)  # samples written per dataset id
    sources: Counter = field(default_factory=Counter)  # samples written per recipe source
    rejections: list[Rejection] = field(default_factory=list)


def scan_recipe(recipe: Recipe) -> tuple[list[WorkItem], list[Rejection], list[Rejection]]:
    """All work items of a recipe (caps applied, duplicate keys rejected, sorted by key),
    the rejections, and the notes (inputs kept under a lenient rule)."""
    items: list[WorkItem] = []
    rejections: list[Rejection] = []
    notes: list[Rejection] = []
    for source in recipe.sources:
        found = source.scan(recipe.resolve)
        rejections += found.rejections
        notes += found.notes
        items += cap_items(found.items, source.max_samples, recipe.seed)
    seen: set[str] = set()
    unique = []
    for item in sorted(items, key=lambda i: i.key):
        if item.key in seen:
            rejections.append(Rejection(item.source, item.task, item.split, item.files.get("gt", item.gt),
                                        f"duplicate sample key {item.key!r}: another file maps to the same key"))
            continue
        seen.add(item.key)
        unique.append(item)
    return unique, rejections, notes


def scan_counts(recipe: Recipe, split: str = "train") -> tuple[dict[str, int], dict[str, float]]:
    """Per-task sample counts and repeat factors a recipe would give, from a scan (no images read)."""
    items, _, _ = scan_recipe(recipe)
    repeat_of = {s.name: s.repeat for s in recipe.sources}
    counts: Counter = Counter()
    effective: Counter = Counter()
    for item in items:
        if item.split == split:
            counts[item.task] += 1
            effective[item.task] += repeat_of[item.source]
    return dict(sorted(counts.items())), {t: round(effective[t] / counts[t], 6) for t in sorted(counts)}


def cap_items(items: list[WorkItem], max_samples: int | None, seed: int) -> list[WorkItem]:
    """At most ``max_samples`` items, chosen by a key-seeded order (a fixed random subset)."""
    if max_samples is None or len(items) <= max_samples:
        return items
    return sorted(items, key=lambda i: seed_from_key(seed, "cap", i.key))[:max_samples]


def plan_shards(items: list[WorkItem], recipe: Recipe, out_dir: Path) -> list[ShardJob]:
    """Group items per (task, split) and cut them into shards of ``recipe.shard_size``."""
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for item in items:
        groups.setdefault((item.task, item.split), []).append(item)
    jobs = []
    for (task, split), group in sorted(groups.items()):
        for index, start in enumerate(range(0, len(group), recipe.shard_size)):
            chunk = tuple(group[start : start + recipe.shard_size])
            jobs.append(ShardJob(task, split, index, chunk, recipe.seed, recipe.encoding.compress_level, str(out_dir)))
    return jobs


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def sample_members(item: WorkItem, seed: int, compress_level: int) -> dict[str, bytes]:
    """The tar members of one sample (``gt.png``, ``json``, ``lq.png`` unless noise is online)."""
    gt, lq, meta = materialize(item, seed)
    members = {"gt.png": encode_png(gt, compress_level), "json": json.dumps(meta, sort_keys=True).encode("utf-8")}
    if lq is not None:
        members["lq.png"] = encode_png(lq, compress_level)
    return members


def write_shard(job: ShardJob) -> ShardResult:
    """Write one tar (temp name, then rename). Bad inputs become rejections, not exceptions."""
    result = ShardResult(job, None)
    target = Path(job.out_dir) / job.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for item in job.items:
            try:
                members = sample_members(item, job.seed, job.compress_level)
            except (ImageReadError, SampleError) as exc:
                files = ", ".join(item.files.values())
                result.rejections.append(Rejection(item.source, item.task, item.split, files, str(exc)))
                continue
            for kind, data in members.items():
                _add_member(tar, f"{item.key}.{kind}", data)
            result.datasets[item.dataset] += 1
            result.sources[item.source] += 1
    written = sum(result.datasets.values())
    if written == 0:
        tmp.unlink()
        return result
    os.replace(tmp, target)
    data = target.read_bytes()
    result.info = ShardInfo(path=job.relpath, samples=written, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return result


def run_jobs(jobs: list[ShardJob], workers: int, progress: bool) -> list[ShardResult]:
    """Run shard jobs in order (1 worker) or in a process pool; results come back in job order."""
    bar = tqdm(total=sum(len(j.items) for j in jobs), unit="img", desc="building shards", disable=not progress)
    results = []
    if workers <= 1:
        iterator = map(write_shard, jobs)
        pool = None
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
        iterator = pool.map(write_shard, jobs)
    try:
        for result in iterator:
            results.append(result)
            bar.update(len(result.job.items))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete temp files and old shard tars that the new manifest does not list."""
    for task_dir in (p for p in out_dir.iterdir() if p.is_dir()):
        for path in task_dir.iterdir():
            relpath = f"{task_dir.name}/{path.name}"
            stale_tar = SHARD_NAME.match(path.name) and relpath not in keep
            if path.is_file() and (stale_tar or ".tar.tmp-" in path.name):
                path.unlink()
        if not any(task_dir.iterdir()):
            task_dir.rmdir()


def _first(rejections: list[Rejection], n: int = 5) -> str:
    return "; ".join(f"[{r.task}/{r.split}] {r.file}: {r.reason}" for r in rejections[:n]) or "no inputs found"


def check_outcome(recipe: Recipe, results: list[ShardResult], rejections: list[Rejection], strict: bool) -> None:
    """Raise BuildError when a declared task/split is empty, or on any rejection with ``strict``."""
    written = Counter()
    for r in results:
        if r.info:
            written[(r.job.task, r.job.split)] += r.info.samples
    empty = [ts for ts in recipe.task_splits() if written[ts] == 0]
    first = _first(rejections)
    if empty:
        names = ", ".join(f"{t} ({s})" for t, s in empty)
        raise BuildError(f"recipe {recipe.name!r}: task {names} has no samples. First rejections: {first}")
    if strict and rejections:
        raise BuildError(f"recipe {recipe.name!r}: {len(rejections)} input(s) rejected with --strict. First: {first}")


def assemble_manifest(recipe: Recipe, results: list[ShardResult], rejections: list[Rejection],
                      notes: list[Rejection]) -> Manifest:
    """The manifest for a finished build."""
    splits: dict[str, dict[str, TaskSplit]] = {}
    for (task, split) in recipe.task_splits():
        mine = [r for r in results if (r.job.task, r.job.split) == (task, split)]
        datasets = sum((r.datasets for r in mine), Counter())
        splits.setdefault(split, {})[task] = TaskSplit(
            samples=sum(datasets.values()), datasets=dict(sorted(datasets.items())),
            shards=[r.info for r in mine if r.info is not None])
    return Manifest(
        recipe_name=recipe.name, recipe_hash=recipe.content_hash(), seed=recipe.seed,
        default_balance=recipe.default_balance, repeats=task_repeats(recipe, results),
        encoding=recipe.encoding.model_dump(), splits=splits,
        rejections=[RejectionRecord(**r.to_dict()) for r in rejections],
        notes=[RejectionRecord(**r.to_dict()) for r in notes],
        recipe=recipe.model_dump(mode="json"), anyir_version=__version__)


def task_repeats(recipe: Recipe, results: list[ShardResult]) -> dict[str, float]:
    """Per train task: effective samples (each source's count x its repeat) / written samples."""
    repeat_of = {s.name: s.repeat for s in recipe.sources}
    written: Counter = Counter()
    effective: Counter = Counter()
    for r in results:
        if r.job.split == "train":
            for source, n in r.sources.items():
                written[r.job.task] += n
                effective[r.job.task] += n * repeat_of[source]
    return {t: round(effective[t] / written[t], 6) for t in sorted(written) if written[t]}


def build_shards(recipe: Recipe, out_dir: str | Path, workers: int = 1, strict: bool = False,
                 progress: bool = True) -> Manifest:
    """Build the shard set of ``recipe`` into ``out_dir`` and return its manifest.

    Raises BuildError when a task ends up empty, or on any rejection with ``strict``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # the set is incomplete until the new one lands
    items, rejections, notes = scan_recipe(recipe)
    if strict and rejections:  # fail before spending time on images
        raise BuildError(f"recipe {recipe.name!r}: {len(rejections)} input(s) rejected with --strict. "
                         f"First: {_first(rejections)}")
    results = run_jobs(plan_shards(items, recipe, out_dir), workers, progress)
    rejections += [rej for r in results for rej in r.rejections]
    check_outcome(recipe, results, rejections, strict)
    manifest = assemble_manifest(recipe, results, rejections, notes)
    _remove_stale(out_dir, {s.path for ts in manifest.splits.values() for t in ts.values() for s in t.shards})
    write_manifest(manifest, out_dir)
    return manifest
