"""A built shard set as readers see it: the manifest (always local) and where each tar is read from.

The manifest travels with the user; the tar files may live beside it, on a web server or behind a
``pipe:`` command (object storage). ``url_prefix`` maps a manifest path
(``derain/train-000000.tar``) to a URL: ``{path}`` in the prefix is replaced by it, otherwise the
path is appended after a ``/``::

    ShardSet.open("shards/aio3")                                              # tars beside the manifest
    ShardSet.open("shards/aio3", "https://data.example.org/aio3")             # over HTTP
    ShardSet.open("shards/aio3", "pipe:aws s3 cp s3://bucket/aio3/{path} -")  # any command

Every reader (the training stream, evaluation, the adaptive balance, ``shards verify``) lists
shards through :meth:`ShardSet.refs`, so the expected size, sha256, sample count, keys digest,
task and split of every tar come from one place and are checked by :mod:`anyir.data.reader`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anyir.data.manifest import Manifest, ManifestError, load_manifest


@dataclass(frozen=True)
class ShardRef:
    """One tar file as the manifest describes it, and the URL it is read from."""

    url: str  # local path, http(s):// URL or pipe: command
    path: str  # relative to the shard set folder, as in the manifest (used in messages)
    task: str
    split: str
    samples: int
    bytes: int
    sha256: str
    keys_sha256: str
    items: int | None = None  # source samples, when train images were cut into patches (None: = samples)

    @property
    def source_samples(self) -> int:
        """Source samples (items) in the tar: the unit the stream's mixtures count."""
        return self.samples if self.items is None else self.items

    @property
    def remote(self) -> bool:
        """True when the tar is not a local file (read over the network or through a command)."""
        return is_remote(self.url)


def is_remote(url: str) -> bool:
    """``http(s)://``, ``pipe:`` and other ``scheme:`` URLs (not ``file:``) are remote."""
    head = url.split(":", 1)[0]
    return ":" in url and len(head) > 1 and head.isalpha() and head != "file"


def shard_url(root: str | Path, rel_path: str, url_prefix: str | None = None) -> str:
    """URL of one tar file: a local path under ``root``, or ``url_prefix`` with the path filled in."""
    if url_prefix is None:
        return str(Path(root) / rel_path)
    if "{path}" in url_prefix:
        return url_prefix.replace("{path}", rel_path)
    return url_prefix.rstrip("/") + "/" + rel_path


@dataclass(frozen=True)
class ShardSet:
    """A shard set: ``root`` holds ``manifest.json``; tars are read from ``url_prefix`` when given."""

    root: Path
    manifest: Manifest
    url_prefix: str | None = None

    @classmethod
    def open(cls, root: str | Path, url_prefix: str | None = None) -> ShardSet:
        """Load and validate the manifest; local tars must exist (remote ones are checked when read)."""
        root = Path(root)
        return cls(root, load_manifest(root, check_files=url_prefix is None), url_prefix)

    @property
    def name(self) -> str:
        """The recipe name the set was built from."""
        return self.manifest.recipe_name

    def url(self, rel_path: str) -> str:
        """Where the tar at manifest path ``rel_path`` is read from."""
        return shard_url(self.root, rel_path, self.url_prefix)

    def tasks(self, split: str) -> list[str]:
        """Tasks with samples in ``split``, sorted."""
        return self.manifest.tasks(split)

    def refs(self, split: str, task: str | None = None) -> list[ShardRef]:
        """Every tar of ``split`` (one task, or all tasks in sorted order), in manifest order."""
        tasks = self.manifest.tasks(split) if task is None else [task]
        if task is not None and task not in self.manifest.tasks(split):
            raise ManifestError(f"{self.root}: no task {task!r} in split {split!r}; "
                                f"available: {self.manifest.tasks(split)}")
        return [ShardRef(self.url(s.path), s.path, t, split, s.samples, s.bytes, s.sha256, s.keys_sha256, s.items)
                for t in tasks for s in self.manifest.shards(t, split)]


def as_shard_set(shards: ShardSet | str | Path, url_prefix: str | None = None) -> ShardSet:
    """Accept a ShardSet or a folder (opened with ``url_prefix``)."""
    if isinstance(shards, ShardSet):
        return shards
    return ShardSet.open(shards, url_prefix)


@dataclass(frozen=True)
class TaskShards:
    """The shards of one task in one split, merged over one or more shard sets."""

    refs: tuple[ShardRef, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Source samples (items) per shard, in ``refs`` order: what the stream's plan counts."""
        return tuple(r.source_samples for r in self.refs)


def merge_tasks(sets: list[ShardSet], split: str) -> dict[str, TaskShards]:
    """Shards per task of ``split`` over several sets (a task present in several sets gets all of them)."""
    refs: dict[str, list[ShardRef]] = {}
    for shard_set in sets:
        for ref in shard_set.refs(split):
            refs.setdefault(ref.task, []).append(ref)
    return {t: TaskShards(tuple(refs[t])) for t in sorted(refs)}
