"""The published folder layouts of the restoration datasets (protocols.md section 1).

A layout is a list of *variants* (the PromptIR/AdaIR arrangement, the MoCE-IR one, the original
release ...). The first variant whose folders exist is used; files are paired by a NAME RULE,
never by sorted order. When no variant fits, the rejection names the folder, shows the expected
layouts and the nearest folder name found (difflib), so a typo such as ``Rainy/`` is obvious.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from anyir.data.sources.synthetic import IMAGE_SUFFIXES

GtRule = Callable[[PurePosixPath], list[str]]


@dataclass(frozen=True)
class Variant:
    """One arrangement of a dataset on disk.

    ``requires``: folders that must exist under the root. ``lq_glob``: degraded files (None for
    clean-only sets, which use ``gt_glob``). ``gt_for``: candidate clean paths for a degraded path,
    the first is the rule; later ones are lenient fallbacks, recorded as notes when used.
    """

    description: str
    requires: tuple[str, ...]
    lq_glob: str | None = None
    gt_glob: str | None = None
    gt_for: GtRule | None = None


@dataclass
class LayoutScan:
    """Pairs found (relpath key, gt path, lq path or None), rejections and notes (file, reason)."""

    pairs: list[tuple[str, Path, Path | None]] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    variant: str = ""


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def same_name(folder: str) -> GtRule:
    """Clean file = ``folder/<same file name>``."""
    return lambda lq: [f"{folder}/{lq.name}"]


def first_token(folder: str, exts: tuple[str, ...]) -> GtRule:
    """Clean file = ``folder/<part before the first '_'><ext>`` for each ext in order (hazy names)."""
    return lambda lq: [f"{folder}/{lq.name.split('_', 1)[0]}{ext or lq.suffix}" for ext in exts]


def nearest_folders(missing: list[str], found: list[str]) -> list[str]:
    """``'wanted' ~ 'closest found'`` for each missing folder that has a close match (difflib)."""
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, found, n=1, cutoff=0.6)
        if close:
            hints.append(f"{name!r} ~ {close[0]!r}")
    return hints


def layout_mismatch(root: Path, variants: list[Variant], layout: str) -> str:
    """A readable reason: what was expected, what exists, and the nearest match."""
    if not root.is_dir():
        return f"folder not found (expected the {layout} root here)"
    found = sorted(p.relative_to(root).as_posix() for pattern in ("*/", "*/*/") for p in root.glob(pattern) if p.is_dir())
    wanted = sorted({r for v in variants for r in v.requires if r != "."})
    hints = nearest_folders([r for r in wanted if r not in found], found)
    expected = "; ".join(f"[{v.description}] needs {', '.join(r + '/' for r in v.requires)}" for v in variants)
    nearest = f"nearest match: {', '.join(hints)}" if hints else "no similar folder names"
    return (f"does not match any {layout} layout. Expected one of: {expected}. "
            f"Found folders: {found[:12] or 'none'}; {nearest}")


def scan_variants(root: Path, variants: list[Variant], layout: str) -> LayoutScan:
    """Pick the first matching variant and pair its files by the variant's name rule."""
    scan = LayoutScan()
    chosen = next((v for v in variants if all((root / r).is_dir() for r in v.requires)), None)
    if chosen is None:
        scan.rejections.append((str(root), layout_mismatch(root, variants, layout)))
        return scan
    scan.variant = chosen.description
    if chosen.lq_glob is None:
        for gt in sorted(p for p in root.glob(chosen.gt_glob) if _is_image(p)):
            scan.pairs.append((gt.relative_to(root).as_posix(), gt, None))
    else:
        for lq in sorted(p for p in root.glob(chosen.lq_glob) if _is_image(p)):
            _pair_one(root, lq, chosen.gt_for, scan)
    if not scan.pairs and not scan.rejections:
        scan.rejections.append((str(root), f"no image files in the [{chosen.description}] layout folders"))
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


# ---- per-dataset variants -------------------------------------------------------------------

def clean_test_variants(split: str) -> list[Variant]:
    """BSD68 / Urban100 / Kodak24 (clean only; noise added at test time)."""
    return [
        Variant("cBSD68 release: original_png/*.png", ("original_png",), gt_glob="original_png/*"),
        Variant("flat folder of clean images (PromptIR test/denoise/bsd68)", (".",), gt_glob="*"),
    ]


def bsd400_wed_variants(split: str) -> list[Variant]:
    """BSD400 + WED training images (clean only)."""
    return [
        Variant("MoCE-IR: WaterlooED/*.bmp + BSD400/*.jpg", ("WaterlooED", "BSD400"), gt_glob="*/*"),
        Variant("PromptIR/AdaIR: one flat folder (data/Train/Denoise)", (".",), gt_glob="*"),
    ]


def _rain_rule(lq: PurePosixPath) -> list[str]:
    # PromptIR: gt/norain-N.png for rainy/rain-N.png; fall back to the same name.
    name = lq.name
    rule = f"gt/norain-{name[len('rain-'):]}" if name.startswith("rain-") else f"gt/{name}"
    return [rule, f"gt/{name}"] if rule != f"gt/{name}" else [rule]


def rain100l_variants(split: str) -> list[Variant]:
    """Rain100L train (rainy/rain-N.png -> gt/norain-N.png) and test (input/N.png -> target/N.png)."""
    return [
        Variant("PromptIR/MoCE-IR: rainy/rain-N.png + gt/norain-N.png", ("rainy", "gt"), "rainy/*", gt_for=_rain_rule),
        Variant("test: input/N.png + target/N.png", ("input", "target"), "input/*", gt_for=same_name("target")),
    ]


def reside_ots_variants(split: str) -> list[Variant]:
    """RESIDE OTS: part{1-4}/<id>_<A>_<beta>.jpg -> clean <id> (same extension first)."""
    return [
        Variant("PromptIR/AdaIR: synthetic/part*/<id>_<A>_<beta>.jpg + original/<id>.<same ext>",
                ("synthetic", "original"), "synthetic/part*/*", gt_for=first_token("original", ("", ".jpg", ".png"))),
        Variant("MoCE-IR: part*/<id>_<A>_<beta>.jpg + clear/<id>.jpg", ("clear",), "part*/*",
                gt_for=first_token("clear", (".jpg", ".png"))),
    ]


def sots_outdoor_variants(split: str) -> list[Variant]:
    """SOTS-outdoor: hazy <id>_<A>_<beta>.jpg -> clean <id>.png."""
    rule = {d: first_token(d, (".png", ".jpg")) for d in ("target", "outdoor/gt", "gt")}
    return [
        Variant("PromptIR: input/0001_0.8_0.2.jpg + target/0001.png", ("input", "target"), "input/*", gt_for=rule["target"]),
        Variant("MoCE-IR: outdoor/hazy/*.jpg + outdoor/gt/<id>.png", ("outdoor/hazy", "outdoor/gt"), "outdoor/hazy/*",
                gt_for=rule["outdoor/gt"]),
        Variant("RESIDE release: hazy/*.jpg + gt/<id>.png", ("hazy", "gt"), "hazy/*", gt_for=rule["gt"]),
    ]


def gopro_variants(split: str) -> list[Variant]:
    """GoPro: same file name in the blurred and sharp folders (the 'blur' folder, not blur_gamma)."""
    def seq_rule(lq: PurePosixPath) -> list[str]:
        """<split>/<seq>/blur/<frame> -> <split>/<seq>/sharp/<frame>."""
        return [str(lq.parent.parent / "sharp" / lq.name)]
    return [
        Variant("AdaIR train: blur/*.png + sharp/*.png", ("blur", "sharp"), "blur/*", gt_for=same_name("sharp")),
        Variant("MoCE-IR crops: input_crops/ + target_crops/", ("input_crops", "target_crops"), "input_crops/*",
                gt_for=same_name("target_crops")),
        Variant("input/*.png + target/*.png", ("input", "target"), "input/*", gt_for=same_name("target")),
        Variant(f"GoPro release: {split}/<sequence>/blur/*.png + sharp/", (split,), f"{split}/*/blur/*", gt_for=seq_rule),
    ]


def lol_variants(split: str) -> list[Variant]:
    """LOL-v1: low/high (release: our485 train, eval15 test), AdaIR low/gt, input/target."""
    release = "our485" if split == "train" else "eval15"
    return [
        Variant(f"LOL release: {release}/low + {release}/high", (f"{release}/low", f"{release}/high"),
                f"{release}/low/*", gt_for=same_name(f"{release}/high")),
        Variant("low/ + high/", ("low", "high"), "low/*", gt_for=same_name("high")),
        Variant("AdaIR train: low/ + gt/", ("low", "gt"), "low/*", gt_for=same_name("gt")),
        Variant("input/ + target/", ("input", "target"), "input/*", gt_for=same_name("target")),
    ]


def cdd11_variants(split: str, subset: str) -> list[Variant]:
    """CDD-11: ``<subset>/<name>.png`` -> ``clear/<name>.png``, under CDD-11_<split>/, <split>/ or the root."""
    out = []
    for prefix in (f"CDD-11_{split}/", f"{split}/", ""):
        out.append(Variant(f"{prefix or './'}{subset}/ + {prefix}clear/", (f"{prefix}{subset}", f"{prefix}clear"),
                           f"{prefix}{subset}/*", gt_for=same_name(f"{prefix}clear")))
    return out


def csd_variants(split: str) -> list[Variant]:
    """CSD (HDCW-Net release): CSD/{Train,Test}/{Snow,Gt,Mask}; same name in Snow and Gt."""
    part = "Train" if split == "train" else "Test"
    return [
        Variant(f"HDCW-Net release: {part}/Snow + {part}/Gt", (f"{part}/Snow", f"{part}/Gt"), f"{part}/Snow/*",
                gt_for=same_name(f"{part}/Gt")),
        Variant("Snow/ + Gt/", ("Snow", "Gt"), "Snow/*", gt_for=same_name("Gt")),
    ]


def uieb_variants(split: str) -> list[Variant]:
    """UIEB: raw-890/ + reference-890/, same name (the split is applied by the source, see uieb_split)."""
    return [Variant("UIEB release: raw-890/ + reference-890/", ("raw-890", "reference-890"), "raw-890/*",
                    gt_for=same_name("reference-890"))]


LAYOUTS: dict[str, Callable[[str], list[Variant]]] = {
    "bsd400_wed": bsd400_wed_variants,
    "clean_test": clean_test_variants,
    "rain100l": rain100l_variants,
    "reside_ots": reside_ots_variants,
    "sots_outdoor": sots_outdoor_variants,
    "gopro": gopro_variants,
    "lol": lol_variants,
    "csd": csd_variants,
    "uieb": uieb_variants,
}
