"""A submission to a track: which data (recipe, balance, per-source repeats), checked against the
track's rule, and the id that names it in the leaderboard.

The submission id is a hash of the recipe's content hash, the canonical balance spec and the
repeat overrides: the same data submitted twice gets the same id (so ``anyir bench run`` resumes
it), and a changed recipe file is a new submission even under the same name.

Repeats: a recipe's per-source ``repeat`` factors scale the ``natural`` (and ``temperature``)
balance; they never duplicate samples on disk. A submission overrides them with
``source=factor`` items (train sources of the recipe), without rebuilding the shards: the task
factors follow as in a build (each source's written samples x its factor, over the task's
samples), and a balance that reads them is fixed to the explicit weights they give
(:func:`anyir.data.balance.with_fixed_base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyir.bench.track import Submission, Track, TrackError, recipe_hash


class SubmissionError(ValueError):
    """A submission breaks its track's rule or names unknown sources; the message says which and how to fix it."""


def parse_repeats(items: list[str] | None) -> dict[str, float]:
    """``["src_a=2", "src_b=0.5"]`` (or one comma-separated item) -> ``{"src_a": 2.0, "src_b": 0.5}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for item in items or [] for p in item.split(",") if p.strip()):
        name, sep, value = (s.strip() for s in part.partition("="))
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        if not sep or not name or not factor > 0 or factor == float("inf") or name in out:
            raise SubmissionError(f"--repeats {part!r}: write SOURCE=FACTOR with a train source of the recipe "
                                  "and a factor > 0, each source once, e.g. --repeats demo_derain_train=2")
        out[name] = factor
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Entry:
    """One submission to one track (the track as loaded now, with its hash)."""

    track: Track
    track_hash: str
    submission: Submission
    recipe: str  # the recipe to train on (a shipped name or a file)
    recipe_name: str
    recipe_hash: str

    @property
    def submission_id(self) -> str:
        """``s-`` + 12 hex digits over (recipe content hash, canonical balance, repeats)."""
        from anyir.leaderboard.records import stable_hash

        return "s-" + stable_hash(self.recipe_hash, self.submission.balance, self.submission.repeats)[:12]

    @property
    def baseline(self) -> bool:
        """True when this is the track's baseline submission."""
        return self.submission_id == baseline_entry(self.track, self.track_hash).submission_id

    @property
    def label(self) -> str:
        """What a ranking shows: the balance, then repeats, then (open track) the recipe."""
        text = self.submission.balance
        if self.submission.repeats:
            text += " | repeats " + ",".join(f"{k}={v:g}" for k, v in self.submission.repeats.items())
        if self.track.data.rule == "open":
            text += f" @ {self.recipe_name}"
        return text

    def record_fields(self) -> dict[str, Any]:
        """The leaderboard's track columns for a run of this submission."""
        return {"track_id": self.track.id, "track_hash": self.track_hash, "submission_id": self.submission_id,
                "submission": {"balance": self.submission.balance, "repeats": dict(self.submission.repeats),
                               "recipe": self.recipe_name, "recipe_hash": self.recipe_hash, "label": self.label,
                               "baseline": self.baseline}}


def make_entry(track: Track, balance: str, recipe: str | Path | None = None,
               repeats: dict[str, float] | None = None, track_hash: str | None = None) -> Entry:
    """A submission checked against the track's rule: a pool track trains only on its own recipe."""
    from pydantic import ValidationError

    from anyir.data.balance import BalanceError, parse_balance

    try:
        parse_balance(balance)
        submission = Submission(balance=balance, repeats=repeats or {}, recipe=str(recipe) if recipe else None)
    except BalanceError as err:
        raise SubmissionError(str(err)) from None
    except ValidationError as err:
        problem = err.errors()[0]
        raise SubmissionError(f"submission {'.'.join(map(str, problem['loc']))}: {problem['msg']}") from None
    name = str(recipe) if recipe else track.data.recipe
    try:
        digest = recipe_hash(name)
    except TrackError as err:
        raise SubmissionError(str(err)) from None
    if track.data.rule == "pool" and digest != recipe_hash(track.data.recipe):
        raise SubmissionError(f"track {track.id!r} is a pool track: submissions train on its recipe "
                              f"{track.data.recipe!r} only (the balance and --repeats are free); drop --recipe "
                              "or use an open track")
    from anyir.data.recipe import load_recipe

    return Entry(track, track_hash or track.content_hash(), submission, name, load_recipe(name).name, digest)


def baseline_entry(track: Track, track_hash: str) -> Entry:
    """The track's baseline submission (its balance and repeats on the track's own recipe)."""
    base = track.baseline
    name = base.recipe or track.data.recipe
    return Entry(track, track_hash, base, name, _recipe_name(name), recipe_hash(name))


def _recipe_name(name: str) -> str:
    from anyir.data.recipe import load_recipe

    return load_recipe(name).name


def task_repeats(manifest: Any, overrides: dict[str, float]) -> dict[str, float]:
    """Per-task repeat factors with the per-source ``overrides`` applied (as a build computes them:
    written samples x factor over the task's written samples). SubmissionError for unknown sources."""
    recipe_sources = {s["name"]: s for s in manifest.recipe.get("sources", [])}
    train = {name: report for name, report in manifest.sources.items() if report.split == "train"}
    unknown = sorted(set(overrides) - set(train))
    if unknown:
        raise SubmissionError(f"--repeats: {unknown} are not train sources of recipe {manifest.recipe_name!r}; "
                              f"its train sources are {sorted(train)}")
    written: dict[str, float] = {}
    effective: dict[str, float] = {}
    for name, report in sorted(train.items()):
        factor = overrides.get(name, float(recipe_sources.get(name, {}).get("repeat", 1.0)))
        written[report.task] = written.get(report.task, 0.0) + report.samples
        effective[report.task] = effective.get(report.task, 0.0) + report.samples * factor
    return {t: round(effective[t] / written[t], 6) for t in sorted(written) if written[t]}


def training_balance(entry: Entry, manifest: Any) -> str:
    """The balance spec the trainer gets: the submitted one, with repeat overrides folded into explicit
    weights when the balance reads repeat factors."""
    from anyir.data.balance import BalanceError, resolve_weights, with_fixed_base

    repeats = task_repeats(manifest, entry.submission.repeats) if entry.submission.repeats else manifest.repeats
    balance = entry.submission.balance
    if entry.submission.repeats:
        balance = str(with_fixed_base(balance, manifest.counts("train"), repeats))
    try:
        resolve_weights(balance, manifest.counts("train"), repeats)  # fails here, not in the trainer
    except BalanceError as err:
        raise SubmissionError(f"{err} (tasks of recipe {manifest.recipe_name!r}: {manifest.tasks('train')})") from None
    return balance


def check_leaks(train_set: Path, test_set: Path, threshold: int | None = None) -> Any:
    """Open tracks: the submission's training images against the track's test images (exact and near
    duplicates, :mod:`anyir.data.audit`). Returns the AuditReport; SubmissionError when any test image leaked."""
    from anyir.data.audit import DEFAULT_THRESHOLD, audit, read_fingerprints
    from anyir.data.manifest import load_manifest

    def fingerprints(folder: Path, split: str) -> list:
        manifest = load_manifest(folder, check_files=False)
        if manifest.fingerprints is None:
            raise SubmissionError(f"{folder}: the shard set has no fingerprints for the leak audit; rebuild it "
                                  "with this anyir (anyir shards build)")
        return [f for f in read_fingerprints(folder / manifest.fingerprints) if f.split == split]

    report = audit(fingerprints(test_set, "test"), fingerprints(train_set, "train"),
                   DEFAULT_THRESHOLD if threshold is None else threshold)
    if report.leaked:
        first = report.pairs[0]
        raise SubmissionError(f"leak audit: {report.leaked} test image(s) of the track ({test_set}) appear in the "
                              f"submission's training data ({train_set}), e.g. test {first.test_key} ~ train "
                              f"{first.train_key} ({first.kind}, {first.distance} bits); remove them from the recipe")
    return report
