"""Every published dataset layout (docs/datasets.md): tiny trees built to shards, pairs
checked by content (each clean image has a unique colour; its degraded partner is 40 levels darker),
so a pairing by sorted order instead of by name rule would fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from anyir.cli import app
from anyir.data.build import BuildError, build_shards, scan_recipe
from anyir.data.recipe import validate_recipe
from anyir.data.samples import iter_samples

NOISE = {"name": "noise", "sigmas": [15, 25, 50]}


def colour_of(name: str) -> int:
    """A distinct grey level per clean image id (50..209)."""
    return 50 + sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 160


def put(path: Path, level: int, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), level, np.uint8)).save(path, quality=95)


def pair(root: Path, lq: str, gt: str, ident: str) -> None:
    """A degraded/clean pair whose colours identify the clean image ``ident``."""
    put(root / gt, colour_of(ident))
    put(root / lq, colour_of(ident) - 40)


def build(tmp_path: Path, source: dict, split: str = "train") -> tuple[list, object]:
    source = {"name": "src", "task": "t", "split": split, **source}
    recipe = validate_recipe({"name": "layout_test", "shard_size": 4, "sources": [source]})
    manifest = build_shards(recipe, tmp_path / "out", progress=False)
    return list(iter_samples(tmp_path / "out", split)), manifest


def assert_paired(samples: list) -> None:
    """Each lq is exactly its own clean image minus 40 (JPEG tolerance 3 levels)."""
    for s in samples:
        diff = s.gt.astype(int).mean() - s.lq.astype(int).mean()
        assert abs(diff - 40) <= 3, (s.key, s.meta["files"], diff)


def test_rain100l_train_pairs_by_name_rule_not_sorted_order(tmp_path):
    root = tmp_path / "Derain"
    for n in (1, 2, 10):
        pair(root, f"rainy/rain-{n}.png", f"gt/norain-{n}.png", f"r{n}")
    put(root / "gt/norain-3.png", 7)  # a clean image without partner shifts any sorted-order pairing
    put(root / "rainy/rain-11.png", 9)  # degraded, no clean partner
    samples, manifest = build(tmp_path, {"kind": "layout", "layout": "rain100l", "root": str(root)})
    assert len(samples) == 3
    assert_paired(samples)
    assert {s.meta["files"]["gt"] for s in samples} == {"gt/norain-1.png", "gt/norain-2.png", "gt/norain-10.png"}
    assert [(r.file, "no clean partner" in r.reason) for r in manifest.rejections] == [("rainy/rain-11.png", True)]


def test_rain100l_test_input_target(tmp_path):
    root = tmp_path / "Rain100L"
    for n in (1, 2, 3):
        pair(root, f"input/{n}.png", f"target/{n}.png", f"t{n}")
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "rain100l", "root": str(root)}, split="test")
    assert len(samples) == 3
    assert_paired(samples)


@pytest.mark.parametrize("variant", ["promptir", "moce"])
def test_reside_ots_hazy_to_clean_id(tmp_path, variant):
    root = tmp_path / "Dehaze"
    hazy_dir, clean_dir = ("synthetic/part", "original") if variant == "promptir" else ("part", "clear")
    for part, hazy in ((1, "0025_0.8_0.04"), (1, "0025_1_0.2"), (2, "0026_0.9_0.1"), (3, "0031_0.95_0.16")):
        pair(root, f"{hazy_dir}{part}/{hazy}.jpg", f"{clean_dir}/{hazy.split('_')[0]}.jpg", hazy.split("_")[0])
    samples, manifest = build(tmp_path, {"kind": "layout", "layout": "reside_ots", "root": str(root)})
    assert len(samples) == 4
    assert_paired(samples)
    assert all(s.meta["files"]["gt"] == f"{clean_dir}/{s.meta['files']['lq'].split('/')[-1][:4]}.jpg" for s in samples)
    assert not manifest.rejections


def test_reside_ots_lenient_extension_is_recorded(tmp_path):
    # AdaIR's README shows original/0025.png while its code looks for the hazy file's extension.
    root = tmp_path / "Dehaze"
    pair(root, "synthetic/part1/0025_0.8_0.04.jpg", "original/0025.png", "0025")
    samples, manifest = build(tmp_path, {"kind": "layout", "layout": "reside_ots", "root": str(root)})
    assert len(samples) == 1 and len(manifest.notes) == 1 and "lenient" in manifest.notes[0].reason


@pytest.mark.parametrize("variant", ["promptir", "moce", "release"])
def test_sots_outdoor(tmp_path, variant):
    root = tmp_path / "sots"
    hazy, gt = {"promptir": ("input", "target"), "moce": ("outdoor/hazy", "outdoor/gt"), "release": ("hazy", "gt")}[variant]
    for ident in ("0001", "0002"):
        pair(root, f"{hazy}/{ident}_0.8_0.2.jpg", f"{gt}/{ident}.png", ident)
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "sots_outdoor", "root": str(root)}, split="test")
    assert len(samples) == 2
    assert_paired(samples)


@pytest.mark.parametrize("folders", [("blur", "sharp"), ("input_crops", "target_crops"), ("input", "target")])
def test_gopro_flat_layouts(tmp_path, folders):
    root = tmp_path / "gopro"
    for name in ("GOPR0372_07_00_000047.png", "GOPR0384_11_00_000001.png"):
        pair(root, f"{folders[0]}/{name}", f"{folders[1]}/{name}", name)
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "gopro", "root": str(root)})
    assert len(samples) == 2
    assert_paired(samples)


def test_gopro_release_sequences_with_crops(tmp_path):
    root = tmp_path / "GOPRO_Large"
    for seq, frame in (("GOPR0372_07_00", "000047"), ("GOPR0374_11_00", "000001")):
        pair(root, f"train/{seq}/blur/{frame}.png", f"train/{seq}/sharp/{frame}.png", seq + frame)
    put(root / "train/GOPR0372_07_00/blur_gamma/000047.png", 3)  # never used (swz30/MPRNet#75)
    source = {"kind": "layout", "layout": "gopro", "root": str(root), "crop": {"size": 12, "per_image": 2}}
    samples, _ = build(tmp_path, source)
    assert len(samples) == 4 and all(s.gt.shape == (12, 12, 3) for s in samples)
    assert_paired(samples)
    assert len({s.key for s in samples}) == 4


@pytest.mark.parametrize("split,folders", [("train", ("our485/low", "our485/high")), ("test", ("eval15/low", "eval15/high")),
                                           ("train", ("low", "gt")), ("test", ("input", "target")), ("train", ("low", "high"))])
def test_lol_layouts(tmp_path, split, folders):
    root = tmp_path / "LOL"
    for n in (1, 22, 179):
        pair(root, f"{folders[0]}/{n}.png", f"{folders[1]}/{n}.png", f"lol{n}")
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "lol", "root": str(root)}, split=split)
    assert len(samples) == 3
    assert_paired(samples)


@pytest.mark.parametrize("prefix", ["CDD-11_train/", "train/", ""])
def test_cdd11_subset_against_clear(tmp_path, prefix):
    root = tmp_path / "cdd11"
    for name in ("001.png", "002.png"):
        put(root / f"{prefix}clear/{name}", colour_of(name))
        for sub, shift in (("low", 40), ("haze_rain", 40)):
            put(root / f"{prefix}{sub}/{name}", colour_of(name) - shift)
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "cdd11", "subset": "haze_rain", "root": str(root)})
    assert len(samples) == 2 and all(s.meta["files"]["lq"].endswith(f"haze_rain/{s.meta['files']['gt'][-7:]}") for s in samples)
    assert_paired(samples)


@pytest.mark.parametrize("split,prefix", [("train", "Train/"), ("test", "Test/"), ("test", "")])
def test_csd_snow_vs_gt(tmp_path, split, prefix):
    root = tmp_path / "CSD"
    for n in (1, 2):
        pair(root, f"{prefix}Snow/{n}.tif", f"{prefix}Gt/{n}.tif", f"csd{n}")
        put(root / f"{prefix}Mask/{n}.tif", 255)
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "csd", "root": str(root)}, split=split)
    assert len(samples) == 2
    assert_paired(samples)


def test_uieb_split_is_disjoint_and_stable(tmp_path):
    root = tmp_path / "UIEB"
    for n in range(6):
        pair(root, f"raw-890/{n}_img_.png", f"reference-890/{n}_img_.png", f"u{n}")
    source = {"kind": "layout", "layout": "uieb", "root": str(root), "uieb_test_count": 2}
    test, _ = build(tmp_path / "a", source, split="test")
    train, _ = build(tmp_path / "b", source, split="train")
    assert len(test) == 2 and len(train) == 4
    assert not {s.meta["files"]["lq"] for s in test} & {s.meta["files"]["lq"] for s in train}
    assert_paired(test + train)


@pytest.mark.parametrize("variant", ["flat", "cbsd68"])
def test_clean_test_sets_with_online_noise(tmp_path, variant):
    root = tmp_path / "bsd68"
    sub = "original_png/" if variant == "cbsd68" else ""
    for name in ("3096.png", "12084.png"):
        put(root / f"{sub}{name}", 100)
    source = {"kind": "layout", "layout": "clean_test", "root": str(root), "degradation": NOISE, "dataset": "bsd68"}
    samples, manifest = build(tmp_path, source, split="test")
    assert len(samples) == 6  # 2 images x 3 sigmas
    assert all(s.lq is None and s.meta["online_noise_sigma"] in (15, 25, 50) for s in samples)
    assert manifest.datasets("t", "test") == {"bsd68": 6}


def test_bsd400_wed_moce_layout(tmp_path):
    root = tmp_path / "denoising"
    put(root / "WaterlooED/00001.bmp", 90)
    put(root / "BSD400/117025.jpg", 120)
    samples, _ = build(tmp_path, {"kind": "layout", "layout": "bsd400_wed", "root": str(root), "degradation": NOISE})
    assert len(samples) == 6
    assert {s.meta["files"]["gt"] for s in samples} == {"WaterlooED/00001.bmp", "BSD400/117025.jpg"}


def test_test_sets_beside_the_training_folders_are_noted_never_built(tmp_path):
    root = tmp_path / "denoising"  # MoCE-IR keeps its test sets next to the training folders
    put(root / "WaterlooED/00001.bmp", 90)
    put(root / "BSD400/117025.jpg", 120)
    put(root / "Urban100/img_001.png", 60)
    samples, manifest = build(tmp_path, {"kind": "layout", "layout": "bsd400_wed", "root": str(root), "degradation": NOISE})
    assert {s.meta["files"]["gt"] for s in samples} == {"WaterlooED/00001.bmp", "BSD400/117025.jpg"}
    assert [(n.file, n.reason.split(" (")[0]) for n in manifest.notes] == [(str(root / "Urban100"),
                                                                             "ignored folder Urban100/")]


def test_bsd400_list_names_matched_leniently_never_dropped_silently(tmp_path):
    root = tmp_path / "Denoise"
    for name in ("00001.bmp", "00002.bmp", "117025.jpg", "2092.jpg", "extra.png"):
        put(root / name, 100)
    listing = tmp_path / "denoise.txt"
    listing.write_text("00001.bmp\n00002.bmp\na117025.jpg\na2092.jpg\n99999.bmp\n")
    source = {"kind": "layout", "layout": "bsd400_wed", "root": str(root), "list_file": str(listing),
              "degradation": {"name": "noise", "sigmas": [25]}}
    samples, manifest = build(tmp_path, source)
    assert sorted(s.meta["files"]["gt"] for s in samples) == ["00001.bmp", "00002.bmp", "117025.jpg", "2092.jpg"]
    assert sorted(n.file for n in manifest.notes) == ["117025.jpg", "2092.jpg"]
    assert sorted((r.file, r.reason.split()[0]) for r in manifest.rejections) == [("99999.bmp", "named"), ("extra.png", "not")]


def test_layout_mismatch_names_folder_expected_layout_and_nearest_match(tmp_path):
    root = tmp_path / "Derain"
    put(root / "Rainy/rain-1.png", 10)
    put(root / "gt/norain-1.png", 50)
    recipe = validate_recipe({"name": "x", "sources": [
        {"name": "rain", "task": "derain", "split": "train", "kind": "layout", "layout": "rain100l", "root": str(root)}]})
    rejections = scan_recipe(recipe).rejections
    reason = rejections[0].reason
    assert rejections[0].file == str(root)
    assert "rainy/rain-N.png + gt/norain-N.png" in reason and "'rainy' ~ 'Rainy'" in reason
    with pytest.raises(BuildError, match="derain"):
        build_shards(recipe, tmp_path / "out", progress=False)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(f"name: x\nsources:\n  - {{name: rain, task: derain, split: train, kind: layout, "
                           f"layout: rain100l, root: '{root}'}}\n")
    result = CliRunner().invoke(app, ["shards", "build", str(recipe_file), "--out", str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 1  # the message is printed whole, brackets included (no rich markup eaten)
    assert "[derain/train]" in result.output and "[test: input/N.png + target/N.png] needs input/, target/" in result.output


def test_generic_paired_folder_regex_rule(tmp_path):
    for n in (1, 2):
        pair(tmp_path, f"deg/rain-{n}.png", f"clean/norain-{n}.png", f"p{n}")
    source = {"kind": "paired", "lq_dir": str(tmp_path / "deg"), "gt_dir": str(tmp_path / "clean"),
              "rule": "regex", "lq_regex": r"^rain-(\d+)", "gt_template": r"norain-\1"}
    samples, _ = build(tmp_path, source)
    assert len(samples) == 2
    assert_paired(samples)


def test_generic_paired_folder_same_stem(tmp_path):
    pair(tmp_path, "deg/a.jpg", "clean/a.png", "a")
    samples, _ = build(tmp_path, {"kind": "paired", "lq_dir": str(tmp_path / "deg"), "gt_dir": str(tmp_path / "clean"),
                                  "rule": "same_stem"})
    assert len(samples) == 1
    assert_paired(samples)


def test_huggingface_saved_dataset_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    clean = [Image.fromarray(np.full((16, 16, 3), colour_of(f"h{i}"), np.uint8)) for i in range(3)]
    degraded = [Image.fromarray(np.full((16, 16, 3), colour_of(f"h{i}") - 40, np.uint8)) for i in range(3)]
    features = datasets.Features({"clean": datasets.Image(), "hazy": datasets.Image(), "id": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"clean": clean, "hazy": degraded, "id": ["a", "b", "c"]}, features=features)
    ds.save_to_disk(str(tmp_path / "hfds"))
    source = {"kind": "hf", "path": str(tmp_path / "hfds"), "lq_column": "hazy", "gt_column": "clean", "key_column": "id"}
    samples, _ = build(tmp_path, source)
    assert sorted(s.key for s in samples) == ["src__a", "src__b", "src__c"]
    assert_paired(samples)
    bad = {**source, "gt_column": "sharp"}
    with pytest.raises(BuildError, match="columns \\['sharp'\\] not found"):
        build(tmp_path / "bad", bad)
