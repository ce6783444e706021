"""'Did you mean' for paths that do not exist: a typo at any level, the root included.

``/data/Derian/rainy`` -> "did you mean /data/Derain/rainy?" when that exists; otherwise the
deepest folder that does exist and what it holds, so a wrong level is obvious too.
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path

MAX_LISTED = 10_000  # entries read from one folder when looking for a close name (a folder of images is big)


def close_name(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name``: a case-insensitive equal first, then difflib (cutoff 0.6)."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _entries(folder: Path) -> list[str]:
    try:
        return [p.name for p in itertools.islice(folder.iterdir(), MAX_LISTED)]
    except OSError:
        return []


def suggest_path(path: Path) -> Path | None:
    """An existing path that differs from ``path`` only by close names at its missing levels, or None."""
    path = path.absolute()
    current = Path(path.anchor)
    changed = False
    for part in path.parts[1:]:
        candidate = current / part
        if candidate.exists():
            current = candidate
            continue
        match = close_name(part, _entries(current)) if current.is_dir() else None
        if match is None:
            return None
        current, changed = current / match, True
    return current if changed else None


def deepest_existing(path: Path) -> Path:
    """The longest prefix of ``path`` that exists (at worst the filesystem root)."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def missing_hint(path: Path) -> str:
    """What to say about a path that does not exist: a close existing path, or where the trail ends."""
    suggestion = suggest_path(path)
    if suggestion is not None:
        return f"did you mean {suggestion}?"
    base = deepest_existing(path)
    folders = sorted(n for n in _entries(base) if (base / n).is_dir())
    listed = ", ".join(f"{n}/" for n in folders[:12]) + (", ..." if len(folders) > 12 else "")
    return f"{base} exists and holds {listed}" if folders else f"{base} exists but holds no folders"


def folder_not_found(path: Path, expected: str = "") -> str:
    """One-line reason for a missing folder, e.g. ``folder not found (...); did you mean /data/Derain?``."""
    what = f" ({expected})" if expected else ""
    return f"folder not found{what}; {missing_hint(path)}"
