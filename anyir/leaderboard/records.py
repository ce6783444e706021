"""What the leaderboard stores about a run: :class:`RunRecord`, built from a run dir or a manifest."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from anyir.train.run_dir import RunDir

SETTINGS = ("aio3", "aio5", "cdd11", "demo")


def stable_hash(*parts: Any) -> str:
    """16 hex digits of sha256 over the canonical JSON of ``parts`` (key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def setting_for_recipe(recipe_name: str | None) -> str | None:
    """The published setting a recipe is scored against: ``aio3_rebalanced`` -> ``aio3``."""
    if recipe_name is None:
        return None
    for setting in SETTINGS:
        if recipe_name == setting or recipe_name.startswith(setting + "_"):
            return setting
    return recipe_name


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class RunRecord(BaseModel):
    """One row of the ``runs`` table plus the run's balance trajectory.

    ``identity`` says *what* was run (a hash of the training summary, a weights file, or the
    recipe for the ``input`` baseline); with the evaluation signature it gives the run id, so
    logging the same evaluation twice replaces rather than duplicates. Set ``run_id`` to force one.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    identity: str
    run_id: str | None = None
    created_at: datetime = Field(default_factory=_utc_now)
    variant: str | None = None
    params: int | None = None
    macs: int | None = None
    recipe_name: str | None = None
    recipe_hash: str | None = None
    balance: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    world_size: int | None = None
    steps: int | None = None
    wall_time_s: float | None = None
    code_version: str | None = None
    origin: Literal["local", "published"] = "local"
    citation: str | None = None
    setting: str | None = None
    sweep_id: str | None = None
    seed: int | None = None
    notes: str | None = None
    venue: str | None = None
    verified: bool | None = None
    checkpoint: str | None = None
    run_dir: str | None = None  # local rows: absolute path of the run folder (the record of the run)
    skipped_shards: int | None = None  # training shards skipped as unusable (see the run's summary)
    replaced_samples: int | None = None  # training samples replaced because of them
    balance_trajectory: list[tuple[int, dict[str, float]]] = Field(default_factory=list)

    def resolve_run_id(self, eval_signature: dict[str, Any] | None = None) -> str:
        """The explicit ``run_id``, else a stable hash of identity + evaluation signature."""
        return self.run_id or stable_hash(self.identity, eval_signature or {})

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, name: str | None = None,
                     sweep_id: str | None = None) -> RunRecord:
        """Read the run folder's ``train_summary.json`` (written by the trainer) into a record.

        The name is the run's own (``run_name`` in the summary, decided once by the trainer) unless
        ``name`` overrides it.
        """
        folder = RunDir(run_dir)
        summary = folder.read_summary()
        recipe = summary.get("recipe") or {}
        trajectory = [(int(e["step"]), {k: float(v) for k, v in e["weights"].items()})
                      for e in summary.get("balance_trajectory") or []]
        notes = [] if summary.get("finished", True) else ["training did not finish"]
        if summary.get("skipped_shards"):
            notes.append(f"{len(summary['skipped_shards'])} training shard(s) skipped, "
                         f"{summary.get('replaced_samples', 0)} samples replaced")
        return cls(
            name=name or summary.get("run_name") or folder.name, identity=stable_hash(summary),
            variant=summary.get("variant"), params=summary.get("params"),
            macs=summary.get("macs_224") or summary.get("macs"),
            recipe_name=recipe.get("name"), recipe_hash=recipe.get("hash"),
            balance=summary.get("balance"), config=summary.get("config"),
            world_size=summary.get("world_size"), steps=summary.get("steps"),
            wall_time_s=summary.get("wall_time_s"), code_version=summary.get("code_version"),
            setting=setting_for_recipe(recipe.get("name")), sweep_id=sweep_id, seed=summary.get("seed"),
            notes="; ".join(notes) or None,
            checkpoint=str(folder.weights.resolve()) if folder.weights.is_file() else None,
            run_dir=str(folder.path.resolve()),
            skipped_shards=len(summary.get("skipped_shards") or {}),
            replaced_samples=int(summary.get("replaced_samples") or 0),
            balance_trajectory=trajectory,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, name: str | None = None) -> RunRecord:
        """A record for a bare ``.safetensors`` file (metadata only: variant, recipe)."""
        from anyir.model.io import read_metadata

        path = Path(path)
        meta = read_metadata(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return cls(name=name or path.stem, identity=f"weights:{digest}", variant=meta.get("variant"),
                   recipe_name=meta.get("recipe_name"), recipe_hash=meta.get("recipe_hash"),
                   setting=setting_for_recipe(meta.get("recipe_name")), checkpoint=str(path.resolve()))

    @classmethod
    def input_baseline(cls, manifest: Any) -> RunRecord:
        """The ``input`` run: the degraded images themselves, scored against the clean ones.

        ``manifest`` is an ``anyir.data.manifest.Manifest`` or a shard directory.
        """
        if isinstance(manifest, (str, Path)):
            from anyir.data.manifest import load_manifest

            manifest = load_manifest(Path(manifest))
        return cls(name="input", identity=f"input:{manifest.recipe_hash}", variant="input", params=0,
                   macs=0, recipe_name=manifest.recipe_name, recipe_hash=manifest.recipe_hash,
                   setting=setting_for_recipe(manifest.recipe_name),
                   notes="degraded input, no restoration (baseline)")
