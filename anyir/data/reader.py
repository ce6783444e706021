"""The one shard reader: fetch a tar (local, HTTP or ``pipe:``), check it against the manifest, then
hand out its samples. The training stream, evaluation, the adaptive balance and ``shards verify``
all read through it.

Integrity is checked where the bytes arrive, before any sample is used (a swapped, stale or
damaged tar must never be trained on or scored):

* the byte count and sha256 of the whole tar equal the manifest's (hashed as the bytes are read:
  a local file is hashed once per process and then served from the page cache through ``mmap``;
  a remote one is hashed while it downloads into a temporary file);
* the tar holds exactly the manifest's number of samples, their keys hash to the manifest's
  ``keys_sha256``, and every sample's ``json`` names the manifest's task and split.

A shard that fails raises :class:`ShardCorrupt`; one that cannot be fetched after retries raises
:class:`ShardUnavailable`. Callers choose the policy (the stream skips and records, evaluation
fails): the reader never guesses. Remote fetches retry with bounded exponential backoff
(:class:`RetryPolicy`) and say so with a :class:`ShardRetryWarning`; an interrupted HTTP download
resumes with a ``Range`` request when the server supports it.

Only ``json`` and image members named ``gt.<ext>`` / ``lq.<ext>`` with a known image format are
exposed; anything else in a tar (``.pyd``, ``.pickle``, ``.pth`` ...) is never read or decoded.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import mmap
import os
import posixpath
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from anyir.data.codec import IMAGE_FORMATS
from anyir.data.shardset import ShardRef, ShardSet

CHUNK = 1 << 20
IMAGE_ROLES = ("gt", "lq")


class ShardError(Exception):
    """A shard could not be used; ``str(err)`` is one line naming the shard and the fix."""

    def __init__(self, ref: ShardRef, reason: str):
        super().__init__(f"{ref.url}: {reason}")
        self.ref, self.reason = ref, reason

    def __reduce__(self):  # picklable (loader workers, checkpoints of the stream state)
        return type(self), (self.ref, self.reason)


class ShardCorrupt(ShardError):
    """The tar's bytes, samples, keys or metadata differ from the manifest (swapped, stale, damaged)."""


class ShardUnavailable(ShardError):
    """The tar could not be fetched, even after retries."""


class ShardRetryWarning(UserWarning):
    """A remote fetch failed and is retried after a pause."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for remote fetches: waits first_wait_s, x2 each time, at most max_wait_s."""

    attempts: int = 8
    first_wait_s: float = 0.5
    max_wait_s: float = 16.0
    timeout_s: float = 60.0  # per network operation (connect / read)

    def waits(self) -> Iterator[float]:
        """The pauses between attempts (``attempts - 1`` of them)."""
        wait = self.first_wait_s
        for _ in range(max(0, self.attempts - 1)):
            yield wait
            wait = min(wait * 2, self.max_wait_s)

    @property
    def total_wait_s(self) -> float:
        """How long an outage can last before a shard is given up."""
        return sum(self.waits())


@dataclass(frozen=True)
class RawSample:
    """One sample's undecoded members: ``images`` maps ``gt.png`` / ``lq.png`` (etc.) to bytes."""

    key: str
    meta: dict
    images: dict[str, memoryview]
    shard: str  # manifest path of its tar, for messages

    def image(self, role: str) -> tuple[str, memoryview] | None:
        """(member name, bytes) of the ``gt`` or ``lq`` image, or None when absent."""
        for name, data in self.images.items():
            if name.startswith(role + "."):
                return name, data
        return None


@dataclass
class Shard:
    """A verified tar: its samples in stored order (members are views of the mapped bytes)."""

    ref: ShardRef
    samples: list[RawSample]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RawSample:
        return self.samples[index]


def keys_digest(keys: list[str]) -> str:
    """sha256 of the sample keys in tar order, one per line: the manifest's ``keys_sha256``."""
    return hashlib.sha256("".join(k + "\n" for k in keys).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- fetching bytes


def _map(f) -> mmap.mmap | bytes:
    size = os.fstat(f.fileno()).st_size
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""


def _hash_mapped(data) -> str:
    digest = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(view), 64 * CHUNK):  # hashlib releases the GIL on large updates
        digest.update(view[start:start + 64 * CHUNK])
    return digest.hexdigest()


def _open_local(ref: ShardRef) -> tuple[mmap.mmap | bytes, tuple[int, int, int]]:
    """Map a local tar; return (bytes, (inode, size, mtime_ns)) — the identity the verified cache keys on."""
    path = ref.url[len("file://"):] if ref.url.startswith("file://") else ref.url
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            return _map(f), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        raise ShardUnavailable(ref, "file not found; rebuild the shard set (`anyir shards build`) "
                                    "or restore the file") from None
    except OSError as exc:
        raise ShardUnavailable(ref, f"cannot read ({exc.strerror or exc})") from None


class _Transient(Exception):
    """A remote failure worth retrying."""


def _download_http(ref: ShardRef, out, digest, have: int, timeout_s: float):
    """Append the rest of the file to ``out`` (a Range request from ``have``); return the digest.

    Raises _Transient (what arrived is kept for a Range resume) or ShardUnavailable (4xx).
    """
    request = urllib.request.Request(ref.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if have and response.status != 206:  # the server ignored Range: start over
                out.seek(0)
                out.truncate()
                digest = hashlib.sha256()
            announced, received = response.headers.get("Content-Length"), 0
            while block := response.read(CHUNK):
                out.write(block)
                digest.update(block)
                received += len(block)
            if announced is not None and received < int(announced):  # http.client does not raise here
                out.flush()
                raise _Transient(f"connection closed after {received} of {announced} bytes", digest)
    except urllib.error.HTTPError as exc:
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code}") from None
        raise ShardUnavailable(ref, f"HTTP {exc.code} {exc.reason}; check --shards-url-prefix") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, EOFError, ValueError) as exc:
        # refused, reset, timed out, cut short (IncompleteRead): keep what arrived, resume later
        out.flush()
        raise _Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}", digest) from None
    return digest


def _download_pipe(ref: ShardRef, out, timeout_s: float):
    """Run a ``pipe:`` command and copy its stdout into ``out`` while hashing; return the digest."""
    out.seek(0)
    out.truncate()
    digest = hashlib.sha256()
    proc = subprocess.Popen(ref.url[len("pipe:"):], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while block := proc.stdout.read(CHUNK):
            out.write(block)
            digest.update(block)
        err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
        code = proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    if code != 0:
        raise _Transient(f"command exited {code}" + (f" ({err[-1]})" if err else ""), hashlib.sha256())
    return digest


def _fetch_remote(ref: ShardRef, retry: RetryPolicy, temp_dir: str | None) -> tuple[mmap.mmap | bytes, str]:
    """Download into an unlinked temporary file (resuming where possible), then map it.

    A response that ends normally is complete: its size and hash are checked by the caller (a
    wrong file is corrupt, not transient). Refused connections, resets, time-outs and responses
    cut short are retried with backoff.
    """
    waits = retry.waits()
    fd, tmp_path = tempfile.mkstemp(prefix=".anyir-shard-", suffix=".tar", dir=temp_dir)
    os.unlink(tmp_path)  # the open descriptor keeps it alive; nothing is left behind on a crash
    with os.fdopen(fd, "w+b") as out:
        digest, attempt = hashlib.sha256(), 1
        while True:
            try:
                if ref.url.startswith("pipe:"):
                    digest = _download_pipe(ref, out, retry.timeout_s)
                else:
                    digest = _download_http(ref, out, digest, out.tell(), retry.timeout_s)
                break
            except _Transient as exc:
                why, digest = exc.args[0], exc.args[1]
                wait = next(waits, None)
                if wait is None:
                    raise ShardUnavailable(ref, f"still failing after {attempt} attempts over "
                                                f"{retry.total_wait_s:.0f} s ({why}); check the server or "
                                                "--shards-url-prefix") from None
                warnings.warn(f"shard {ref.path}: {why}; retrying in {wait:g} s (attempt {attempt + 1}/"
                              f"{retry.attempts})", ShardRetryWarning, stacklevel=2)
                time.sleep(wait)
                attempt += 1
        out.flush()
        return _map(out), digest.hexdigest()


# ---------------------------------------------------------------------------- parsing and checks


def split_member_name(name: str) -> tuple[str, str]:
    """(sample key, member kind) of a tar member: webdataset's rule, the key ends at the first dot
    of the file name (``a/b.gt.png`` -> (``a/b``, ``gt.png``))."""
    folder, base = posixpath.split(name)
    stem, _, kind = base.partition(".")
    return posixpath.join(folder, stem), kind


def _wanted(kind: str) -> bool:
    """``json`` and ``gt.<ext>`` / ``lq.<ext>`` with a known image format; nothing else is exposed."""
    role, _, ext = kind.partition(".")
    return kind == "json" or (role in IMAGE_ROLES and ext in IMAGE_FORMATS)


def _parse(ref: ShardRef, data) -> list[RawSample]:
    """Samples of a verified tar, in stored order; raises ShardCorrupt on any structural mismatch."""
    view = memoryview(data)
    groups: list[tuple[str, dict[str, memoryview]]] = []
    try:
        with tarfile.open(fileobj=_ViewFile(view), mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, kind = split_member_name(info.name)
                if not groups or groups[-1][0] != key:
                    groups.append((key, {}))
                if _wanted(kind):
                    groups[-1][1][kind] = view[info.offset_data:info.offset_data + info.size]
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise ShardCorrupt(ref, f"not a readable tar ({type(exc).__name__}: {exc}); rebuild the shard set") from None
    keys = [k for k, _ in groups]
    if len(keys) != ref.samples or keys_digest(keys) != ref.keys_sha256:
        raise ShardCorrupt(ref, f"holds {len(keys)} samples whose keys differ from the manifest's {ref.samples} "
                                "(stale or swapped shard); rebuild the shard set")
    return [_checked_sample(ref, key, members) for key, members in groups]


def _checked_sample(ref: ShardRef, key: str, members: dict[str, memoryview]) -> RawSample:
    if "json" not in members or not any(m.startswith("gt.") for m in members):
        raise ShardCorrupt(ref, f"sample {key!r} lacks its json or gt image; rebuild the shard set")
    try:
        meta = json.loads(bytes(members.pop("json")))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ShardCorrupt(ref, f"sample {key!r}: metadata is not JSON; rebuild the shard set") from None
    if not isinstance(meta, dict) or meta.get("task") != ref.task or meta.get("split") != ref.split:
        got = (meta.get("task"), meta.get("split")) if isinstance(meta, dict) else None
        raise ShardCorrupt(ref, f"sample {key!r} is {got} but the manifest lists this shard as "
                                f"{(ref.task, ref.split)} (swapped shard); rebuild the shard set")
    return RawSample(key, meta, members, ref.path)


class _ViewFile:
    """A minimal read-only file over a memoryview, so tarfile can parse headers without copying data."""

    def __init__(self, view: memoryview):
        self._view, self._pos = view, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        out = bytes(self._view[self._pos:end])
        self._pos = end
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


# ---------------------------------------------------------------------------- the reader


@dataclass
class ShardReader:
    """Fetches, verifies and caches shards for one process.

    ``cache_size``: verified shards kept open (the stream keeps one per task). ``verified`` holds
    local files already hashed in this run, keyed by URL with (inode, size, mtime): the stream
    passes it to new loader workers so a file is hashed about once per run, not per worker.
    ``failed`` remembers shards that failed, so a bad shard is reported once and not refetched.
    """

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache_size: int = 2
    temp_dir: str | None = None
    verified: dict[str, tuple] = field(default_factory=dict)
    failed: dict[str, ShardError] = field(default_factory=dict)
    newly_verified: dict[str, tuple] = field(default_factory=dict)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()  # mapped files do not travel to loader workers
        return state

    def shard(self, ref: ShardRef) -> Shard:
        """The verified shard (from the cache when open); raises ShardError (remembered per URL)."""
        if ref.url in self.failed:
            raise self.failed[ref.url]
        if ref.url in self._cache:
            self._cache.move_to_end(ref.url)
            return self._cache[ref.url]
        try:
            shard = Shard(ref, self._load(ref))
        except ShardError as err:
            self.failed[ref.url] = err
            raise
        self._cache[ref.url] = shard
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return shard

    def _load(self, ref: ShardRef) -> list[RawSample]:
        if ref.remote:
            data, sha = _fetch_remote(ref, self.retry, self.temp_dir)
            identity = None
        else:
            data, identity = _open_local(ref)
            sha = None if self.verified.get(ref.url) == identity else ""
        if len(data) != ref.bytes:
            raise ShardCorrupt(ref, f"{len(data)} bytes, the manifest says {ref.bytes} (truncated, replaced or "
                                    "from another build); rebuild the shard set or restore the file")
        if sha == "":
            sha = _hash_mapped(data)
        if sha is not None and sha != ref.sha256:
            raise ShardCorrupt(ref, "sha256 differs from the manifest (modified, replaced or from another build); "
                                    "rebuild the shard set or restore the file")
        samples = _parse(ref, data)
        if identity is not None:
            self.verified[ref.url] = identity
            self.newly_verified[ref.url] = identity
        return samples

    def iter_split(self, shards: ShardSet, split: str, tasks: list[str] | None = None,
                   on_error: Callable[[ShardError], None] | None = None) -> Iterator[RawSample]:
        """Every sample of ``split`` (optionally only ``tasks``), task by task in manifest order.

        A shard that fails raises, unless ``on_error`` is given: then it is called and the shard skipped.
        """
        for task in (tasks if tasks is not None else shards.tasks(split)):
            for ref in shards.refs(split, task):
                try:
                    shard = self.shard(ref)
                except ShardError as err:
                    if on_error is None:
                        raise
                    on_error(err)
                    continue
                yield from shard.samples


def verify_shard_set(shards: ShardSet) -> list[str]:
    """Check every tar of the set (bytes, sha256, sample count, keys, task/split metadata);
    return one problem line per failing shard (empty: all good)."""
    reader = ShardReader(cache_size=1)
    problems = []
    for split in sorted(shards.manifest.splits):
        for ref in shards.refs(split):
            try:
                reader.shard(ref)
            except ShardError as err:
                problems.append(f"{ref.path}: {err.reason}")
    return problems


__all__ = ["RawSample", "RetryPolicy", "Shard", "ShardCorrupt", "ShardError", "ShardReader", "ShardRetryWarning",
           "ShardUnavailable", "keys_digest", "verify_shard_set"]
