"""Layout sources on real-download shapes: a layout reads only the folders it names (others are
noted, never read), a wrong root gets a 'did you mean' at every level, and the scan says which
variant matched. Trees are built in the published layouts under tmp_path; scans read no pixels."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from anyir.data.recipe import validate_recipe
from anyir.data.sources.layout_scan import scan_variants
from anyir.data.sources.layouts import CDD11_SUBSETS, layout_variants

NOISE = {"name": "noise", "sigmas": [15, 25, 50]}


def put(path: Path, level: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(path)


def scan(source: dict, split: str = "train"):
    """Scan one source of a one-source recipe (no images are read)."""
    recipe = validate_recipe({"name": "t", "sources": [{"name": "src", "task": "t", "split": split, **source}]})
    return recipe.sources[0].scan(recipe.resolve)


def test_moce_denoising_tree_does_not_leak_its_test_sets_into_training(tmp_path):
    # The common MoCE-IR tree: training and test sets side by side under denoising/.
    root = tmp_path / "denoising"
    put(root / "WaterlooED/00001.bmp")
    put(root / "BSD400/117025.jpg")
    put(root / "Urban100/img_001.png")
    put(root / "cBSD68/original_png/3096.png")
    found = scan({"kind": "layout", "layout": "bsd400_wed", "root": str(root), "degradation": NOISE})
    assert {i.files["gt"] for i in found.items} == {"WaterlooED/00001.bmp", "BSD400/117025.jpg"}
    ignored = {n.file: n.reason for n in found.notes}
    assert set(ignored) == {str(root / "Urban100"), str(root / "cBSD68")}
    assert ignored[str(root / "Urban100")].startswith("ignored folder Urban100/ (not part of the bsd400_wed layout")
    assert found.variant == "bsd400_wed [MoCE-IR: WaterlooED/*.bmp + BSD400/*.jpg]"


def test_reside_ots_reads_part1_to_part4_only(tmp_path):
    root = tmp_path / "RESIDE"
    for part in ("part1", "part4", "part1_backup", "part5"):
        put(root / f"{part}/0025_0.8_0.04.jpg")
    put(root / "clear/0025.jpg")
    found = scan({"kind": "layout", "layout": "reside_ots", "root": str(root)})
    assert sorted(i.files["lq"] for i in found.items) == ["part1/0025_0.8_0.04.jpg", "part4/0025_0.8_0.04.jpg"]
    assert sorted(Path(n.file).name for n in found.notes) == ["part1_backup", "part5"]


def test_known_release_folders_are_skipped_without_notes(tmp_path):
    # GOPRO_Large: blur_gamma and the test split are part of the release, not surprises.
    root = tmp_path / "GOPRO_Large"
    for split in ("train", "test"):
        for sub in ("blur", "blur_gamma", "sharp"):
            put(root / f"{split}/GOPR0372_07_00/{sub}/000047.png")
    put(root / "train/GOPR0372_07_00/extra/000047.png")
    found = scan({"kind": "layout", "layout": "gopro", "root": str(root)})
    assert [i.files["lq"] for i in found.items] == ["train/GOPR0372_07_00/blur/000047.png"]
    assert [n.file for n in found.notes] == [str(root / "train/GOPR0372_07_00/extra")]


def test_cdd11_other_subsets_and_split_are_not_reported(tmp_path):
    root = tmp_path / "cdd11"
    for split in ("CDD-11_train", "CDD-11_test"):
        for sub in ("clear", *CDD11_SUBSETS):
            put(root / f"{split}/{sub}/001.png")
    put(root / "CDD-11_train/__MACOSX/001.png")
    found = scan({"kind": "layout", "layout": "cdd11", "subset": "haze_rain", "root": str(root)})
    assert [i.files["lq"] for i in found.items] == ["CDD-11_train/haze_rain/001.png"]
    assert [Path(n.file).name for n in found.notes] == ["__MACOSX"]


def _variant_tree(root: Path, variant) -> None:
    """Files for one variant: a degraded file per lq glob (and its clean partner), or clean files."""
    def fill(glob: str, name: str) -> str:
        return glob.replace("<sequence>", "seq").replace("*/", "seq/").replace("*", name)
    for glob in variant.lq_globs:
        lq = fill(glob, "0001_0.8_0.2.png")
        put(root / lq)
        put(root / variant.gt_for(PurePosixPath(lq))[0])
    for glob in variant.gt_globs:
        put(root / fill(glob, "0001.png"))


ALL_VARIANTS = [(layout, split, v) for layout in ("bsd400_wed", "clean_test", "rain100l", "reside_ots", "sots_outdoor",
                                                  "gopro", "lol", "cdd11", "csd", "uieb")
                for split in ("train", "test") for v in layout_variants(layout, split, "haze")]


@pytest.mark.parametrize("layout,split,variant", ALL_VARIANTS,
                         ids=[f"{lay}-{sp}-{i}" for i, (lay, sp, _) in enumerate(ALL_VARIANTS)])
def test_every_variant_reads_only_the_folders_it_names(tmp_path, layout, split, variant):
    root = tmp_path / "root"
    _variant_tree(root, variant)
    put(root / "zz_unrelated/0001_0.8_0.2.png")  # a sibling test set, a backup, an extracted archive...
    found = scan_variants(root, [variant], layout)
    assert found.variant == variant.description and found.pairs and not found.rejections, found.rejections
    assert not any("zz_unrelated" in str(p) for pair in found.pairs for p in pair)
    assert (str(root / "zz_unrelated"), f"ignored folder zz_unrelated/ (not part of the {layout} layout "
                                        f"[{variant.description}])") in found.notes


# ---- a wrong root: did you mean, too high, too low ----------------------------------------------

def rain_tree(root: Path) -> None:
    put(root / "rainy/rain-1.png", 60)
    put(root / "gt/norain-1.png", 100)


def test_root_typo_gets_did_you_mean(tmp_path):
    rain_tree(tmp_path / "data/Derain")
    found = scan({"kind": "layout", "layout": "rain100l", "root": str(tmp_path / "data/Derian")})
    assert not found.items and found.variant == ""
    assert f"did you mean {tmp_path / 'data/Derain'}?" in found.rejections[0].reason
    error = found.empty_error()
    assert error is not None and "\n" not in error and "'src' (t/train)" in error and "optional: true" in error


def test_typo_two_levels_up_is_corrected_at_every_level(tmp_path):
    rain_tree(tmp_path / "Data/Train/Derain")
    found = scan({"kind": "layout", "layout": "rain100l", "root": str(tmp_path / "data/Trian/Derain")})
    assert f"did you mean {tmp_path / 'Data/Train/Derain'}?" in found.rejections[0].reason


def test_root_one_level_too_high(tmp_path):
    rain_tree(tmp_path / "data/Train/Derain")
    put(tmp_path / "data/Train/Denoise/00001.bmp")
    found = scan({"kind": "layout", "layout": "rain100l", "root": str(tmp_path / "data/Train")})
    reason = found.rejections[0].reason
    assert reason.startswith("the rain100l layout [PromptIR/MoCE-IR: rainy/rain-N.png + gt/norain-N.png] is in "
                             f"{tmp_path / 'data/Train/Derain'}; set root to it"), reason


def test_root_two_levels_too_high_moce_tree(tmp_path):
    rain_tree(tmp_path / "datasets/deraining/RainTrainL")
    found = scan({"kind": "layout", "layout": "rain100l", "root": str(tmp_path / "datasets")})
    assert f"is in {tmp_path / 'datasets/deraining/RainTrainL'}; set root to it" in found.rejections[0].reason


def test_root_one_level_too_low(tmp_path):
    rain_tree(tmp_path / "Derain")
    found = scan({"kind": "layout", "layout": "rain100l", "root": str(tmp_path / "Derain/rainy")})
    assert found.rejections[0].reason.startswith(f"root is too deep: the rain100l layout [PromptIR/MoCE-IR: "
                                                 f"rainy/rain-N.png + gt/norain-N.png] is in {tmp_path / 'Derain'}")


def test_missing_root_below_the_layout_points_at_it(tmp_path):
    rain_tree(tmp_path / "Derain")
    found = scan({"kind": "layout", "layout": "rain100l", "root": str(tmp_path / "Derain/Rain100L_train")})
    reason = found.rejections[0].reason
    assert reason.startswith("folder not found (expected the rain100l root here)")
    assert f"is in {tmp_path / 'Derain'}; set root to it" in reason


def test_flat_test_set_root_one_level_too_high(tmp_path):
    # PromptIR's test/denoise holds bsd68/ and urban100/: the root must be the set's own folder.
    root = tmp_path / "test/denoise"
    put(root / "bsd68/3096.png")
    put(root / "urban100/img_001.png")
    found = scan({"kind": "layout", "layout": "clean_test", "root": str(root), "degradation": NOISE}, split="test")
    assert not found.items
    assert "image files are further down, in bsd68/, urban100/" in found.rejections[0].reason
    assert sorted(Path(n.file).name for n in found.notes) == ["bsd68", "urban100"]


def test_flat_root_inside_a_moce_tree_says_what_it_leaves_out(tmp_path):
    root = tmp_path / "denoising"
    put(root / "WaterlooED/00001.bmp")
    put(root / "BSD400/117025.jpg")
    found = scan({"kind": "layout", "layout": "bsd400_wed", "root": str(root / "BSD400"), "degradation": NOISE})
    assert [i.files["gt"] for i in found.items][:1] == ["117025.jpg"]
    assert any("only BSD400/ is read, not WaterlooED/" in n.reason for n in found.notes)


def test_paired_and_synthetic_folders_get_did_you_mean(tmp_path):
    put(tmp_path / "clean/a.png")
    put(tmp_path / "degraded/a.png")
    found = scan({"kind": "paired", "lq_dir": str(tmp_path / "degarded"), "gt_dir": str(tmp_path / "clean")})
    assert found.rejections[0].reason == f"folder not found; did you mean {tmp_path / 'degraded'}?"
    found = scan({"kind": "synthetic", "images": {"folder": str(tmp_path / "Clean")}, "degradation": NOISE})
    assert f"did you mean {tmp_path / 'clean'}?" in found.rejections[0].reason


def test_missing_folder_without_close_name_lists_what_exists(tmp_path):
    put(tmp_path / "alpha/a.png")
    put(tmp_path / "beta/b.png")
    found = scan({"kind": "synthetic", "images": {"folder": str(tmp_path / "zzz/qqq")}, "degradation": NOISE})
    assert found.rejections[0].reason == f"folder not found; {tmp_path} exists and holds alpha/, beta/"


# ---- optional sources, variant and counts ----------------------------------------------------

def test_optional_source_may_be_empty_and_stays_out_of_the_hash(tmp_path):
    base = {"name": "a", "task": "t", "split": "train", "kind": "synthetic",
            "images": {"folder": str(tmp_path / "none")}, "degradation": NOISE}
    required = validate_recipe({"name": "r", "sources": [base]})
    optional = validate_recipe({"name": "r", "sources": [{**base, "optional": True}]})
    assert optional.sources[0].optional and not required.sources[0].optional
    assert required.content_hash() == optional.content_hash()  # optional never changes a sample
    assert required.sources[0].scan(required.resolve).empty_error() is not None
    found = optional.sources[0].scan(optional.resolve)
    assert found.empty_error() is None and found.rejections and found.summary()["optional"] is True


def test_summary_reports_variant_files_and_samples(tmp_path):
    root = tmp_path / "bsd68"
    put(root / "3096.png")
    put(root / "12084.png")
    found = scan({"kind": "layout", "layout": "clean_test", "root": str(root), "degradation": NOISE}, split="test")
    assert found.summary() == {
        "source": "src", "task": "t", "split": "test",
        "variant": "clean_test [flat folder of clean images (PromptIR test/denoise/bsd68)]",
        "inputs": 2, "samples": 6, "rejections": 0, "notes": 0, "optional": False}
    assert found.empty_error() is None


def test_every_source_kind_names_what_it_read(tmp_path):
    put(tmp_path / "lq/a.png")
    put(tmp_path / "gt/a.png")
    paired = scan({"kind": "paired", "lq_dir": str(tmp_path / "lq"), "gt_dir": str(tmp_path / "gt"), "rule": "same_stem"})
    assert paired.variant == "paired folders (same_stem)"
    synthetic = scan({"kind": "synthetic", "images": {"skimage": ["camera", "astronaut"]}, "degradation": NOISE})
    assert synthetic.variant == "synthetic: skimage [astronaut, camera]"
    folder = scan({"kind": "synthetic", "images": {"folder": str(tmp_path / "gt")}, "degradation": NOISE})
    assert folder.variant == f"synthetic: folder {tmp_path / 'gt'} (*)"
    hf = scan({"kind": "hf", "path": str(tmp_path / "hfds"), "lq_column": "hazy"})
    assert hf.variant == f"hf save_to_disk folder {tmp_path / 'hfds'} [train]: clean vs hazy"
    assert hf.rejections[0].reason.startswith("folder not found (a Dataset.save_to_disk folder)")


def test_missing_data_root_is_one_plain_line(monkeypatch):
    monkeypatch.delenv("ANYIR_DATA_ROOT", raising=False)
    recipe = validate_recipe({"name": "r", "sources": [
        {"name": "a", "task": "t", "split": "train", "kind": "layout", "layout": "rain100l",
         "root": "${data_root}/Derain"}]})
    from anyir.data.recipe import RecipeError

    with pytest.raises(RecipeError) as info:
        recipe.sources[0].scan(recipe.resolve)
    message = str(info.value)
    assert "\n" not in message and "--data-root DIR" in message and "ANYIR_DATA_ROOT=DIR" in message
