"""Matching a folder against a dataset's layout variants, pairing its files, and saying what was
not read and where the layout really is when the root is wrong.

A variant reads only the folders it names. Any other folder under the root is reported as a note
("ignored folder"), so a test set sitting next to training folders can never leak in unseen.
Folders of the same published release that a variant knowingly leaves out (``skips``: the other
split, GoPro's ``blur_gamma``, CSD's masks, the other CDD-11 subsets) are not reported.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from anyir.data.sources.paths import deepest_existing, folder_not_found
from anyir.data.sources.synthetic import IMAGE_SUFFIXES

GtRule = Callable[[PurePosixPath], list[str]]
MAX_PROBED = 200  # folders examined when looking for the layout above or below a wrong root


@dataclass(frozen=True)
class Variant:
    """One arrangement of a dataset on disk.

    ``requires``: folders that must exist under the root (``.`` = the root itself; ``*`` matches one
    path level, e.g. ``train/*/blur``). ``lq_globs``: degraded files; clean-only sets use ``gt_globs``
    instead. ``gt_for``: candidate clean paths for a degraded path; the first is the rule, later ones
    are lenient fallbacks, recorded as notes when used. ``skips``: folders of the same release that
    are knowingly not read (fnmatch patterns); they are not reported as ignored.
    """

    description: str
    requires: tuple[str, ...]
    lq_globs: tuple[str, ...] = ()
    gt_globs: tuple[str, ...] = ()
    gt_for: GtRule | None = None
    skips: tuple[str, ...] = ()

    @property
    def is_flat(self) -> bool:
        """True for 'one folder of images' variants, which match any existing root."""
        return self.requires == (".",)

    @property
    def reads(self) -> tuple[str, ...]:
        """Every folder whose files this variant reads or whose sub-folders it names ('' = the root)."""
        parents = {str(PurePosixPath(g).parent) for g in (*self.lq_globs, *self.gt_globs)}
        return tuple(sorted({"" if f == "." else f for f in (*self.requires, *parents)}))

    def matches(self, root: Path) -> bool:
        """Whether every required folder exists under ``root``."""
        return root.is_dir() and all(_folder_exists(root, r) for r in self.requires)


@dataclass
class LayoutScan:
    """Pairs found (relpath key, gt path, lq path or None), rejections and notes (file, reason)."""

    pairs: list[tuple[str, Path, Path | None]] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    variant: str = ""


def _folder_exists(root: Path, pattern: str) -> bool:
    if "*" in pattern:
        return any(p.is_dir() for p in root.glob(pattern))
    return (root / pattern).is_dir()


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` directly holds an image file (looks at its first 2000 entries)."""
    try:
        return any(_is_image(p) for p in itertools.islice(folder.iterdir(), 2000))
    except OSError:
        return False


def _glob_images(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted({p for pattern in patterns for p in root.glob(pattern) if _is_image(p)})


# ---- which folders a variant reads ------------------------------------------------------------

def _match_segments(rel: str, pattern: str, prefix: bool) -> bool:
    """``rel`` equals ``pattern`` segment by segment (``*`` = one level), or (``prefix``) is a proper
    prefix of it, i.e. a folder on the way to one the variant reads."""
    got, want = rel.split("/"), pattern.split("/") if pattern else []
    fits = len(got) < len(want) if prefix else len(got) == len(want)
    return fits and all(fnmatch.fnmatchcase(g, w) for g, w in zip(got, want[: len(got)], strict=True))


def _subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_dir())
    except OSError:
        return []


def ignored_folders(root: Path, variant: Variant) -> list[str]:
    """Folders under ``root`` (relative, POSIX) that ``variant`` neither reads nor knowingly skips.

    Reports the outermost such folder only (``Urban100``, not everything inside it).
    """
    reads, ignored, pending = variant.reads, [], [""]
    while pending:
        rel = pending.pop()
        for name in _subfolders(root / rel if rel else root):
            child = f"{rel}/{name}" if rel else name
            if any(_match_segments(child, s, prefix=False) for s in variant.skips):
                continue
            if any(_match_segments(child, r, prefix=False) or _match_segments(child, r, prefix=True) for r in reads):
                pending.append(child)
            else:
                ignored.append(child)
    return sorted(ignored)


# ---- the layout is somewhere else --------------------------------------------------------------

def _probe_below(root: Path) -> list[Path]:
    """``root`` and the folders one and two levels below it (at most MAX_PROBED), nearest first."""
    level1 = [root / n for n in _subfolders(root)]
    level2 = (f / n for f in level1 for n in _subfolders(f))
    return list(itertools.islice(itertools.chain([root], level1, level2), MAX_PROBED))


def layout_elsewhere(root: Path, variants: list[Variant], layout: str) -> str | None:
    """Where the layout is when ``root`` is a level (or two) too high or too low, as advice; else None."""
    structured = [v for v in variants if not v.is_flat]
    found = [(folder, v) for folder in _probe_below(root) for v in structured if v.matches(folder)]
    if found:
        places = list(dict.fromkeys(str(f) for f, _ in found))
        where = places[0] if len(places) == 1 else f"{', '.join(places[:3])}{', ...' if len(places) > 3 else ''}"
        one = "it" if len(places) == 1 else "one of them"
        return f"the {layout} layout [{found[0][1].description}] is in {where}; set root to {one}"
    for parent in (root.parent, root.parent.parent):
        chosen = next((v for v in structured if v.matches(parent)), None)
        if chosen is not None:
            return f"root is too deep: the {layout} layout [{chosen.description}] is in {parent}; set root to it"
    if any(v.is_flat for v in variants):
        holders = [f for f in _probe_below(root)[1:] if _holds_images(f)]
        if holders:
            names = ", ".join(str(f.relative_to(root)) + "/" for f in holders[:5])
            return f"image files are further down, in {names}; set root to the folder that holds them"
    return None


def layout_mismatch(root: Path, variants: list[Variant], layout: str) -> str:
    """A readable reason: what was expected, what exists, and the nearest folder names."""
    found = sorted(p.relative_to(root).as_posix() for pattern in ("*/", "*/*/") for p in root.glob(pattern) if p.is_dir())
    wanted = sorted({r for v in variants for r in v.requires if r != "." and "*" not in r})
    hints = nearest_folders([r for r in wanted if r not in found], found)
    expected = "; ".join(f"[{v.description}] needs {', '.join(r + '/' for r in v.requires)}" for v in variants)
    nearest = f"nearest match: {', '.join(hints)}" if hints else "no similar folder names"
    return (f"does not match any {layout} layout. Expected one of: {expected}. "
            f"Found folders: {found[:12] or 'none'}; {nearest}")


def nearest_folders(missing: list[str], found: list[str]) -> list[str]:
    """``'wanted' ~ 'closest found'`` for each missing folder that has a close match (difflib)."""
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, found, n=1, cutoff=0.6)
        if close:
            hints.append(f"{name!r} ~ {close[0]!r}")
    return hints


def _narrower_than_parent(root: Path, chosen: Variant, variants: list[Variant], layout: str) -> str | None:
    """A flat variant matched, but the parent holds a structured variant that reads more than this folder."""
    if not chosen.is_flat:
        return None
    for v in variants:
        if not v.is_flat and v.matches(root.parent) and root.name in v.reads and len(v.reads) > 1:
            others = ", ".join(f"{r}/" for r in v.reads if r != root.name)
            return (f"the parent {root.parent} holds the {layout} layout [{v.description}]; with root here "
                    f"only {root.name}/ is read, not {others}")
    return None


# ---- the scan --------------------------------------------------------------------------------

def scan_variants(root: Path, variants: list[Variant], layout: str) -> LayoutScan:
    """Pick the first matching variant, pair its files by the variant's name rule, report the rest."""
    scan = LayoutScan()
    if not root.is_dir():
        reason = folder_not_found(root, f"expected the {layout} root here")
        base = deepest_existing(root)
        near = "did you mean" not in reason and base != Path(base.anchor)
        elsewhere = layout_elsewhere(base, variants, layout) if near else None
        scan.rejections.append((str(root), f"{reason}; {elsewhere}" if elsewhere else reason))
        return scan
    chosen = next((v for v in variants if v.matches(root)), None)
    if chosen is None:
        elsewhere = layout_elsewhere(root, variants, layout)
        scan.rejections.append((str(root), f"{elsewhere}" if elsewhere else layout_mismatch(root, variants, layout)))
        return scan
    scan.variant = chosen.description
    if chosen.lq_globs:
        for lq in _glob_images(root, chosen.lq_globs):
            _pair_one(root, lq, chosen.gt_for, scan)
    else:
        scan.pairs = [(gt.relative_to(root).as_posix(), gt, None) for gt in _glob_images(root, chosen.gt_globs)]
    for rel in ignored_folders(root, chosen):
        scan.notes.append((str(root / rel), f"ignored folder {rel}/ (not part of the {layout} layout [{chosen.description}])"))
    narrower = _narrower_than_parent(root, chosen, variants, layout)
    if narrower:
        scan.notes.append((str(root), narrower))
    if not scan.pairs and not scan.rejections:
        elsewhere = layout_elsewhere(root, variants, layout)
        scan.rejections.append((str(root), f"no image files in the [{chosen.description}] layout folders"
                                           + (f"; {elsewhere}" if elsewhere else "")))
    return scan


def _pair_one(root: Path, lq: Path, gt_for: GtRule, scan: LayoutScan) -> None:
    rel = PurePosixPath(lq.relative_to(root).as_posix())
    candidates = gt_for(rel)
    for i, cand in enumerate(candidates):
        if (root / cand).is_file():
            if i > 0:
                scan.notes.append((str(rel), f"clean partner {candidates[0]} missing; used {cand} (lenient match)"))
            scan.pairs.append((str(rel), root / cand, lq))
            return
    scan.rejections.append((str(rel), f"degraded image has no clean partner: expected {candidates[0]}"))
