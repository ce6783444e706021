"""The ``layout`` source kind: a published dataset in one of its known folder arrangements."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from anyir.data.sources.base import Resolver, ScanResult, SourceBase, expand_clean, expand_pair
from anyir.data.sources.layouts import LayoutScan, layout_variants, scan_variants
from anyir.data.sources.paths import missing_hint
from anyir.data.sources.refs import file_ref
from anyir.degrade.seeding import seed_from_key

CLEAN_ONLY = ("bsd400_wed", "clean_test")
LayoutName = Literal["bsd400_wed", "clean_test", "rain100l", "reside_ots", "sots_outdoor", "gopro", "lol",
                     "cdd11", "csd", "uieb"]


class LayoutSource(SourceBase):
    """A dataset in a published layout under ``root``.

    ``list_file`` (bsd400_wed only): PromptIR's ``denoise.txt``; names are matched leniently
    (``a117025.jpg`` ~ ``117025.jpg``) and every mismatch is recorded, never dropped silently.
    ``subset`` (cdd11 only): the degradation folder, e.g. ``low_haze``. ``uieb_test_count``: UIEB has
    no official split; the test split is the N files whose sha256-derived seed of the file name is
    smallest (stable on every machine), train is the rest. It is NOT the papers' (unpublished) T90.
    """

    kind: Literal["layout"] = "layout"
    layout: LayoutName
    root: str
    list_file: str | None = None
    subset: str | None = None
    uieb_test_count: int = 90

    @model_validator(mode="after")
    def _options_fit_layout(self) -> LayoutSource:
        if (self.layout == "cdd11") != (self.subset is not None):
            raise ValueError(f"source {self.name!r}: 'subset' is required for layout cdd11 and only for it")
        if self.list_file is not None and self.layout != "bsd400_wed":
            raise ValueError(f"source {self.name!r}: 'list_file' applies to layout bsd400_wed only")
        clean_only = self.layout in CLEAN_ONLY
        if clean_only and self.degradation is None:
            raise ValueError(f"source {self.name!r}: layout {self.layout} holds clean images only; add a "
                             "'degradation' (e.g. {name: noise, sigmas: [15, 25, 50]})")
        if not clean_only and self.degradation is not None:
            raise ValueError(f"source {self.name!r}: layout {self.layout} holds real pairs; remove 'degradation'")
        return self

    def scan(self, resolve: Resolver) -> ScanResult:
        """Find the variant, pair files by name rule, apply list/split rules, expand into items."""
        root = resolve(self.root)
        found = scan_variants(root, layout_variants(self.layout, self.split, self.subset), self.layout)
        if self.list_file is not None:
            filter_by_list(found, resolve(self.list_file))
        if self.layout == "uieb":
            keep_uieb_split(found, self.split, self.uieb_test_count)
        result = self.new_result(f"{self.layout} [{found.variant}]" if found.variant else "")
        result.rejections = [self.reject(f, r) for f, r in found.rejections]
        result.notes = [self.reject(f, r) for f, r in found.notes]
        for relpath, gt, lq in found.pairs:
            files = {"gt": gt.relative_to(root).as_posix()} | ({"lq": relpath} if lq is not None else {})
            if lq is None:
                result.items += expand_clean(self, file_ref(gt), relpath, files)
            else:
                result.items += expand_pair(self, file_ref(gt), file_ref(lq), relpath, files)
        return result


def lenient_name(name: str) -> str:
    """Normalise a list name for lenient matching: stem, lower case, a letter prefix before digits dropped
    (BSD400 lists say ``a117025.jpg`` where downloads say ``117025.jpg``)."""
    stem = Path(name).stem.lower()
    match = re.fullmatch(r"[a-z]+(\d+)", stem)
    return match.group(1) if match else stem


def filter_by_list(found: LayoutScan, list_file: Path) -> None:
    """Keep the files named in ``list_file``; record lenient matches as notes, the rest as rejections."""
    if not list_file.is_file():
        found.rejections.append((str(list_file), f"list file not found ({missing_hint(list_file)}); "
                                                  "remove 'list_file' to use every image"))
        found.pairs = []
        return
    listed = [Path(line.strip()).name for line in list_file.read_text().splitlines() if line.strip()]
    exact = set(listed)
    lenient = {lenient_name(n): n for n in listed}
    matched: set[str] = set()
    kept = []
    for relpath, gt, lq in found.pairs:
        name = Path(relpath).name
        if name in exact:
            matched.add(name)
        elif lenient_name(name) in lenient:
            matched.add(lenient[lenient_name(name)])
            found.notes.append((relpath, f"listed as {lenient[lenient_name(name)]} in {list_file.name}; matched leniently"))
        else:
            found.rejections.append((relpath, f"not named in list file {list_file.name}"))
            continue
        kept.append((relpath, gt, lq))
    for name in listed:
        if name not in matched:
            found.rejections.append((name, f"named in {list_file.name} but no such file in the folder"))
    found.pairs = kept


def keep_uieb_split(found: LayoutScan, split: str, test_count: int) -> None:
    """Keep this split's UIEB pairs (see LayoutSource docstring for the rule)."""
    order = sorted(found.pairs, key=lambda p: seed_from_key("uieb-split", Path(p[0]).name))
    test = {p[0] for p in order[:test_count]}
    found.pairs = [p for p in found.pairs if (p[0] in test) == (split == "test")]
