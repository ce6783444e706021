"""Build a shard set from a recipe: scan every source, check, encode, write the manifest, swap in.

Order matters for users with real data (a 72k-image OTS encode takes hours):

1. **Scan every source first** (lists and pairs files; no image is read). A source that yields
   nothing is an error unless the recipe marks it ``optional: true``, and with ``--strict`` any
   rejection is: both fail here, before a single image is encoded.
2. **Encode** shards (in worker processes that die with their parent) into a temporary sibling
   folder ``.<name>.build-<pid>``; the existing set at ``out`` stays usable all along.
3. **Check** the outcome (a declared task that ended up empty, or ``--strict`` rejections during
   encoding), **audit** test against train samples for leaks (``fingerprints.parquet``; with
   ``--strict`` any overlap fails), then write ``manifest.json`` last.
4. **Swap** the new set into place (an atomic exchange where the OS offers one), then delete the
   old one. A failed, interrupted or killed build therefore leaves the old set intact (or
   nothing), never a half-written one; stale temporary folders and files are removed by the next
   build.
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from anyir import __version__
from anyir.data.audit import FINGERPRINTS_NAME, AuditReport, audit_set, write_fingerprints
from anyir.data.manifest import (
    MANIFEST_NAME,
    Manifest,
    RejectionRecord,
    SourceReport,
    TaskSplit,
    write_manifest,
)
from anyir.data.recipe import Recipe
from anyir.data.shard_writer import ShardJob, ShardResult, write_shard
from anyir.data.sources.base import Rejection, WorkItem, dedupe_rejections
from anyir.degrade.seeding import seed_from_key
from anyir.process import pid_alive


class BuildError(RuntimeError):
    """The build cannot produce a usable shard set; the message names the source/task and the fix."""


# ---------------------------------------------------------------------------- 1. scan


@dataclass
class SourceScan:
    """What scanning one source found (before encoding)."""

    name: str
    kind: str
    task: str
    split: str
    variant: str
    items: int
    rejections: list[Rejection]
    notes: list[Rejection]
    optional: bool


@dataclass
class RecipeScan:
    """Every work item of a recipe (caps applied, duplicate keys rejected, sorted by key), plus what
    each source contributed."""

    items: list[WorkItem] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[Rejection] = field(default_factory=list)
    sources: list[SourceScan] = field(default_factory=list)

    def empty_sources(self) -> list[SourceScan]:
        """Non-optional sources that yielded nothing."""
        return [s for s in self.sources if s.items == 0 and not s.optional]


def scan_recipe(recipe: Recipe) -> RecipeScan:
    """Scan every source of ``recipe`` (lists files, reads no image)."""
    scan = RecipeScan()
    items: list[WorkItem] = []
    for source in recipe.sources:
        found = source.scan(recipe.resolve)
        kept = cap_items(found.items, source.max_samples, recipe.seed)
        scan.rejections += found.rejections
        scan.notes += found.notes
        items += kept
        scan.sources.append(SourceScan(
            name=source.name, kind=source.kind, task=source.task, split=source.split,
            variant=getattr(found, "variant", "") or "", items=len(kept), rejections=list(found.rejections),
            notes=list(found.notes), optional=bool(getattr(source, "optional", False))))
    seen: set[str] = set()
    for item in sorted(items, key=lambda i: i.key):
        if item.key in seen:
            scan.rejections.append(Rejection(item.source, item.task, item.split, item.files.get("gt", item.gt),
                                             f"duplicate sample key {item.key!r}: another file maps to the same key"))
            continue
        seen.add(item.key)
        scan.items.append(item)
    return scan


def cap_items(items: list[WorkItem], max_samples: int | None, seed: int) -> list[WorkItem]:
    """At most ``max_samples`` items, chosen by a key-seeded order (a fixed random subset)."""
    if max_samples is None or len(items) <= max_samples:
        return items
    return sorted(items, key=lambda i: seed_from_key(seed, "cap", i.key))[:max_samples]


def scan_counts(recipe: Recipe, split: str = "train") -> tuple[dict[str, int], dict[str, float]]:
    """Per-task sample counts and repeat factors a recipe would give, from a scan (no images read)."""
    scan = scan_recipe(recipe)
    repeat_of = {s.name: s.repeat for s in recipe.sources}
    counts: Counter = Counter()
    effective: Counter = Counter()
    for item in scan.items:
        if item.split == split:
            counts[item.task] += 1
            effective[item.task] += repeat_of[item.source]
    return dict(sorted(counts.items())), {t: round(effective[t] / counts[t], 6) for t in sorted(counts)}


def _first(rejections: list[Rejection], n: int = 3) -> str:
    return "; ".join(f"[{r.task}/{r.split}] {r.file}: {r.reason}" for r in rejections[:n]) or "no inputs found"


def check_scan(recipe: Recipe, scan: RecipeScan, strict: bool) -> None:
    """Fail before encoding: a non-optional source that yields nothing, or (``strict``) any rejection."""
    empty = scan.empty_sources()
    if empty:
        lines = [f"source {s.name!r} ({s.task}/{s.split}) yields no samples: {_first(s.rejections, 2)}" for s in empty]
        raise BuildError(f"recipe {recipe.name!r}: " + " | ".join(lines) +
                         ". Fix the path (or --data-root), or mark the source `optional: true`; nothing was encoded")
    if strict and scan.rejections:
        raise BuildError(f"recipe {recipe.name!r}: {len(scan.rejections)} input(s) rejected with --strict "
                         f"(nothing was encoded). First: {_first(scan.rejections)}")


# ---------------------------------------------------------------------------- 2. encode


def plan_shards(items: list[WorkItem], recipe: Recipe, out_dir: Path) -> list[ShardJob]:
    """Group items per (task, split) and cut them into shards of ``recipe.shard_size`` items (with
    patches, a shard holds that many source samples, each with all its patches)."""
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    for item in items:
        groups.setdefault((item.task, item.split), []).append(item)
    jobs = []
    encoding = recipe.encoding
    for (task, split), group in sorted(groups.items()):
        patch = encoding.patch_for(split)
        for index, start in enumerate(range(0, len(group), recipe.shard_size)):
            chunk = tuple(group[start : start + recipe.shard_size])
            jobs.append(ShardJob(task, split, index, chunk, recipe.seed, encoding.image_format(split),
                                 encoding.compress_level, str(out_dir),
                                 None if patch is None else (patch.size, patch.stride)))
    return jobs


def _die_with_parent() -> None:
    """Pool worker initializer: exit when the building process dies (even by SIGKILL).

    Linux delivers SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); elsewhere, and as a
    second line, a daemon thread notices that the worker was re-parented and exits.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="anyir-parent-watch").start()


def run_jobs(jobs: list[ShardJob], workers: int, progress: bool) -> list[ShardResult]:
    """Run shard jobs in order (1 worker) or in a process pool; results come back in job order."""
    bar = tqdm(total=sum(len(j.items) for j in jobs), unit="img", desc="encoding shards", disable=not progress)
    results = []
    pool = None
    if workers <= 1:
        iterator = map(write_shard, jobs)
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_die_with_parent)
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


# ---------------------------------------------------------------------------- 3. check + manifest


def check_outcome(recipe: Recipe, results: list[ShardResult], rejections: list[Rejection], strict: bool) -> None:
    """Raise BuildError when a declared task/split is empty, or on any rejection with ``strict``."""
    written: Counter = Counter()
    for r in results:
        if r.info:
            written[(r.job.task, r.job.split)] += r.info.samples
    declared = {(s.task, s.split) for s in recipe.sources if not getattr(s, "optional", False)}
    empty = sorted(ts for ts in declared if written[ts] == 0)
    if empty:
        names = ", ".join(f"{t} ({s})" for t, s in empty)
        raise BuildError(f"recipe {recipe.name!r}: task {names} has no samples. "
                         f"First rejections: {_first(rejections)}")
    if strict and rejections:
        raise BuildError(f"recipe {recipe.name!r}: {len(rejections)} input(s) rejected with --strict. "
                         f"First: {_first(rejections)}")


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


def assemble_manifest(recipe: Recipe, scan: RecipeScan, results: list[ShardResult],
                      rejections: list[Rejection]) -> Manifest:
    """The manifest for a finished build."""
    splits: dict[str, dict[str, TaskSplit]] = {}
    for task, split in sorted({(r.job.task, r.job.split) for r in results if r.info is not None}):
        mine = [r for r in results if (r.job.task, r.job.split) == (task, split)]
        datasets = sum((r.datasets for r in mine), Counter())
        shards = [r.info for r in mine if r.info is not None]
        splits.setdefault(split, {})[task] = TaskSplit(
            samples=sum(s.samples for s in shards), items=sum(datasets.values()),
            datasets=dict(sorted(datasets.items())), shards=shards)
    written = sum((r.sources for r in results), Counter())
    encode_rejections = Counter(r.source for r in dedupe_rejections(x for res in results for x in res.rejections))
    sources = {s.name: SourceReport(kind=s.kind, task=s.task, split=s.split, variant=s.variant, items=s.items,
                                    samples=written[s.name], rejections=len(s.rejections) + encode_rejections[s.name],
                                    notes=len(s.notes), optional=s.optional) for s in scan.sources}
    return Manifest(
        recipe_name=recipe.name, recipe_hash=recipe.content_hash(), seed=recipe.seed,
        default_balance=recipe.default_balance, repeats=task_repeats(recipe, results),
        encoding=recipe.encoding.model_dump(), splits=splits, sources=sources,
        rejections=[RejectionRecord(**r.to_dict()) for r in rejections],
        notes=[RejectionRecord(**r.to_dict()) for r in scan.notes],
        recipe=recipe.model_dump(mode="json"), anyir_version=__version__)


def audit_build(results: list[ShardResult], folder: Path, strict: bool) -> AuditReport:
    """Write the fingerprint sidecar into ``folder`` and audit test vs train (``strict``: fail on overlap)."""
    fingerprints = [fp for r in results for fp in r.fingerprints]
    write_fingerprints(folder / FINGERPRINTS_NAME, fingerprints)
    report = audit_set(fingerprints)
    if strict and not report.clean:
        raise BuildError(f"{report.summary()}; --strict fails on any train/test overlap (see docs/audit.md)")
    return report


# ---------------------------------------------------------------------------- 4. swap in




def _owner_pid(path: Path) -> int | None:
    tail = path.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def clean_stale(out_dir: Path) -> list[Path]:
    """Remove what killed builds left: temp sibling folders and temp files inside the set (dead pids only)."""
    removed = []
    parent, name = out_dir.parent, out_dir.name
    candidates = [*parent.glob(f".{name}.build-*"), *parent.glob(f".{name}.old-*")]
    if out_dir.is_dir():
        candidates += [*out_dir.glob(f".{MANIFEST_NAME}.tmp-*"), *out_dir.glob("*/.*.tar.tmp-*")]
    for path in candidates:
        pid = _owner_pid(path)
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            continue  # another build is running right now
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _looks_like_shard_set(folder: Path) -> bool:
    """Only a manifest, the fingerprint file, task folders of tars and temp files: safe to replace."""
    for entry in folder.iterdir():
        if entry.name in (MANIFEST_NAME, FINGERPRINTS_NAME) or entry.name.startswith("."):
            continue
        if not entry.is_dir() or any(not (p.suffix == ".tar" or p.name.startswith(".")) for p in entry.iterdir()):
            return False
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def swap_into_place(staging: Path, out_dir: Path) -> None:
    """Make ``staging`` the set at ``out_dir``; the previous set (if any) is deleted afterwards."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    if _exchange(staging, out_dir):
        shutil.rmtree(staging)  # now holds the old set
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, old)
    os.replace(staging, out_dir)
    shutil.rmtree(old)


def build_shards(recipe: Recipe, out_dir: str | Path, workers: int = 1, strict: bool = False,
                 progress: bool = True,
                 on_scan: Callable[[RecipeScan], None] | None = None) -> Manifest:
    """Build the shard set of ``recipe`` into ``out_dir`` and return its manifest (see module docs).

    ``on_scan(scan)`` is called after the scan, before encoding (the CLI prints the plan there).
    Raises BuildError (nothing encoded when the scan already shows the problem).
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and (not out_dir.is_dir() or not _looks_like_shard_set(out_dir)):
        raise BuildError(f"--out {out_dir} exists and is not a shard set (it holds other files); "
                         "choose a new or empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)
    scan = scan_recipe(recipe)
    if on_scan is not None:
        on_scan(scan)
    check_scan(recipe, scan, strict)
    staging = out_dir.with_name(f".{out_dir.name}.build-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        results = run_jobs(plan_shards(scan.items, recipe, staging), workers, progress)
        rejections = scan.rejections + dedupe_rejections(rej for r in results for rej in r.rejections)
        check_outcome(recipe, results, rejections, strict)
        report = audit_build(results, staging, strict)
        manifest = assemble_manifest(recipe, scan, results, rejections).model_copy(
            update={"audit": report, "fingerprints": FINGERPRINTS_NAME})
        write_manifest(manifest, staging)
        swap_into_place(staging, out_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BuildError(_disk_full_message(out_dir, exc)) from None
        raise
    return manifest


def _disk_full_message(out_dir: Path, exc: OSError) -> str:
    """One line: which disk, how much is free now (the staged build was removed), what was kept."""
    try:
        usage = shutil.disk_usage(out_dir.parent)
        space = f"{usage.free / 1e6:.1f} MB free of {usage.total / 1e6:.1f} MB on the disk holding {out_dir.parent}"
    except OSError:
        space = f"the disk holding {out_dir.parent}"
    kept = (f"the previous shard set at {out_dir} is intact" if (out_dir / MANIFEST_NAME).is_file()
            else f"nothing was written to {out_dir}")
    return (f"disk full while writing the shard set ({exc.strerror or exc}; {space}); the partial build was "
            f"removed and {kept}. Free space or choose another --out")
