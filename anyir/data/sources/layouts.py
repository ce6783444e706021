"""The published folder layouts of the restoration datasets (docs/datasets.md).

A layout is a list of *variants* (the PromptIR/AdaIR arrangement, the MoCE-IR one, the original
release ...). The first variant whose folders exist is used; files are paired by a NAME RULE,
never by sorted order. A variant reads only the folders it names (no ``*/*`` over the root), so a
test set stored next to the training folders is reported as an ignored folder, never read. Matching,
pairing and the "did you mean" advice live in :mod:`anyir.data.sources.layout_scan`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from anyir.data.sources.layout_scan import (
    GtRule,
    LayoutScan,
    Variant,
    layout_mismatch,
    nearest_folders,
    scan_variants,
)

OTS_PARTS = ("part1", "part2", "part3", "part4")
CDD11_SUBSETS = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
                 "low_haze_rain", "low_haze_snow")


def same_name(folder: str) -> GtRule:
    """Clean file = ``folder/<same file name>``."""
    return lambda lq: [f"{folder}/{lq.name}"]


def first_token(folder: str, exts: tuple[str, ...]) -> GtRule:
    """Clean file = ``folder/<part before the first '_'><ext>`` for each ext in order (hazy names)."""
    return lambda lq: [f"{folder}/{lq.name.split('_', 1)[0]}{ext or lq.suffix}" for ext in exts]


def _other(split: str, train: str, test: str) -> str:
    """The folder of the split this source does not read (part of the release, so not reported)."""
    return test if split == "train" else train


# ---- per-dataset variants -------------------------------------------------------------------

def clean_test_variants(split: str) -> list[Variant]:
    """BSD68 / Urban100 / Kodak24 (clean only; noise added at test time)."""
    return [
        Variant("cBSD68 release: original_png/*.png", ("original_png",), gt_globs=("original_png/*",),
                skips=("noisy*",)),
        Variant("flat folder of clean images (PromptIR test/denoise/bsd68)", (".",), gt_globs=("*",)),
    ]


def bsd400_wed_variants(split: str) -> list[Variant]:
    """BSD400 + WED training images (clean only)."""
    return [
        Variant("MoCE-IR: WaterlooED/*.bmp + BSD400/*.jpg", ("WaterlooED", "BSD400"),
                gt_globs=("WaterlooED/*", "BSD400/*")),
        Variant("PromptIR/AdaIR: one flat folder (data/Train/Denoise)", (".",), gt_globs=("*",)),
    ]


def _rain_rule(lq: PurePosixPath) -> list[str]:
    # PromptIR: gt/norain-N.png for rainy/rain-N.png; fall back to the same name.
    name = lq.name
    rule = f"gt/norain-{name[len('rain-'):]}" if name.startswith("rain-") else f"gt/{name}"
    return [rule, f"gt/{name}"] if rule != f"gt/{name}" else [rule]


def rain100l_variants(split: str) -> list[Variant]:
    """Rain100L train (rainy/rain-N.png -> gt/norain-N.png) and test (input/N.png -> target/N.png)."""
    return [
        Variant("PromptIR/MoCE-IR: rainy/rain-N.png + gt/norain-N.png", ("rainy", "gt"), ("rainy/*",), gt_for=_rain_rule),
        Variant("test: input/N.png + target/N.png", ("input", "target"), ("input/*",), gt_for=same_name("target")),
    ]


def reside_ots_variants(split: str) -> list[Variant]:
    """RESIDE OTS: part{1-4}/<id>_<A>_<beta>.jpg -> clean <id> (same extension first)."""
    return [
        Variant("PromptIR/AdaIR: synthetic/part1..part4/<id>_<A>_<beta>.jpg + original/<id>.<same ext>",
                ("synthetic", "original"), tuple(f"synthetic/{p}/*" for p in OTS_PARTS),
                gt_for=first_token("original", ("", ".jpg", ".png"))),
        Variant("MoCE-IR: part1..part4/<id>_<A>_<beta>.jpg + clear/<id>.jpg", ("clear",),
                tuple(f"{p}/*" for p in OTS_PARTS), gt_for=first_token("clear", (".jpg", ".png"))),
    ]


def sots_outdoor_variants(split: str) -> list[Variant]:
    """SOTS-outdoor: hazy <id>_<A>_<beta>.jpg -> clean <id>.png."""
    rule = {d: first_token(d, (".png", ".jpg")) for d in ("target", "outdoor/gt", "gt")}
    return [
        Variant("PromptIR: input/0001_0.8_0.2.jpg + target/0001.png", ("input", "target"), ("input/*",),
                gt_for=rule["target"]),
        Variant("MoCE-IR: outdoor/hazy/*.jpg + outdoor/gt/<id>.png", ("outdoor/hazy", "outdoor/gt"), ("outdoor/hazy/*",),
                gt_for=rule["outdoor/gt"]),
        Variant("RESIDE release: hazy/*.jpg + gt/<id>.png", ("hazy", "gt"), ("hazy/*",), gt_for=rule["gt"]),
    ]


def gopro_variants(split: str) -> list[Variant]:
    """GoPro: same file name in the blurred and sharp folders (the 'blur' folder, not blur_gamma)."""
    def seq_rule(lq: PurePosixPath) -> list[str]:
        """<split>/<seq>/blur/<frame> -> <split>/<seq>/sharp/<frame>."""
        return [str(lq.parent.parent / "sharp" / lq.name)]
    return [
        Variant("AdaIR train: blur/*.png + sharp/*.png", ("blur", "sharp"), ("blur/*",), gt_for=same_name("sharp")),
        Variant("MoCE-IR crops: input_crops/ + target_crops/", ("input_crops", "target_crops"), ("input_crops/*",),
                gt_for=same_name("target_crops")),
        Variant("input/*.png + target/*.png", ("input", "target"), ("input/*",), gt_for=same_name("target")),
        Variant(f"GOPRO_Large release: {split}/<sequence>/blur/*.png + {split}/<sequence>/sharp/",
                (f"{split}/*/blur", f"{split}/*/sharp"), (f"{split}/*/blur/*",), gt_for=seq_rule,
                skips=(f"{split}/*/blur_gamma", _other(split, "train", "test"))),
    ]


def lol_variants(split: str) -> list[Variant]:
    """LOL-v1: low/high (release: our485 train, eval15 test), AdaIR low/gt, input/target."""
    release = "our485" if split == "train" else "eval15"
    return [
        Variant(f"LOL release: {release}/low + {release}/high", (f"{release}/low", f"{release}/high"),
                (f"{release}/low/*",), gt_for=same_name(f"{release}/high"), skips=(_other(split, "our485", "eval15"),)),
        Variant("low/ + high/", ("low", "high"), ("low/*",), gt_for=same_name("high")),
        Variant("AdaIR train: low/ + gt/", ("low", "gt"), ("low/*",), gt_for=same_name("gt")),
        Variant("input/ + target/", ("input", "target"), ("input/*",), gt_for=same_name("target")),
    ]


def cdd11_variants(split: str, subset: str) -> list[Variant]:
    """CDD-11: ``<subset>/<name>.png`` -> ``clear/<name>.png``, under CDD-11_<split>/, <split>/ or the root.

    The other ten subset folders (read by the recipe's other sources) and the other split's folder
    are part of the release: not reported as ignored.
    """
    out = []
    for prefix, other_split in ((f"CDD-11_{split}/", f"CDD-11_{_other(split, 'train', 'test')}"),
                                (f"{split}/", _other(split, "train", "test")), ("", None)):
        skips = tuple(f"{prefix}{s}" for s in CDD11_SUBSETS if s != subset) + ((other_split,) if other_split else ())
        out.append(Variant(f"{prefix or './'}{subset}/ + {prefix}clear/", (f"{prefix}{subset}", f"{prefix}clear"),
                           (f"{prefix}{subset}/*",), gt_for=same_name(f"{prefix}clear"), skips=skips))
    return out


def csd_variants(split: str) -> list[Variant]:
    """CSD (HDCW-Net release): CSD/{Train,Test}/{Snow,Gt,Mask}; same name in Snow and Gt; masks unused."""
    part = "Train" if split == "train" else "Test"
    return [
        Variant(f"HDCW-Net release: {part}/Snow + {part}/Gt", (f"{part}/Snow", f"{part}/Gt"), (f"{part}/Snow/*",),
                gt_for=same_name(f"{part}/Gt"), skips=(f"{part}/Mask", _other(split, "Train", "Test"))),
        Variant("Snow/ + Gt/", ("Snow", "Gt"), ("Snow/*",), gt_for=same_name("Gt"), skips=("Mask",)),
    ]


def uieb_variants(split: str) -> list[Variant]:
    """UIEB: raw-890/ + reference-890/, same name (the split is applied by the source, see uieb_split)."""
    return [Variant("UIEB release: raw-890/ + reference-890/", ("raw-890", "reference-890"), ("raw-890/*",),
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


def layout_variants(layout: str, split: str, subset: str | None = None) -> list[Variant]:
    """The variants of ``layout`` for ``split`` (``subset``: the CDD-11 folder, cdd11 only)."""
    if layout == "cdd11":
        return cdd11_variants(split, subset or "<subset>")
    return LAYOUTS[layout](split)


__all__ = ["CDD11_SUBSETS", "LAYOUTS", "LayoutScan", "Variant", "cdd11_variants", "first_token", "layout_mismatch",
           "layout_variants", "nearest_folders", "same_name", "scan_variants"]
