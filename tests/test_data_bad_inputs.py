"""Bad input: each is recorded with file and reason, and the build fails only when a task ends up
empty (or on any rejection with --strict). Nothing is dropped silently."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from anyir.cli import app
from anyir.data.build import BuildError, build_shards
from anyir.data.images import ALPHA_DROPPED, read_image_bytes, to_rgb8
from anyir.data.recipe import validate_recipe
from anyir.data.samples import iter_samples

NOISE = {"name": "noise", "sigmas": [25]}


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def clean_recipe(folder, *extra_sources, name="bad") -> object:
    sources = [{"name": "clean", "task": "denoise", "split": "train", "kind": "synthetic",
                "images": {"folder": str(folder)}, "degradation": NOISE}, *extra_sources]
    return validate_recipe({"name": name, "sources": sources})


def paired_source(tmp_path, task="derain"):
    return {"name": "pairs", "task": task, "split": "train", "kind": "paired",
            "lq_dir": str(tmp_path / "lq"), "gt_dir": str(tmp_path / "gt")}


def test_corrupt_and_truncated_images_are_rejected_others_kept(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    good = png_bytes(np.full((16, 16, 3), 80, np.uint8))
    (folder / "good.png").write_bytes(good)
    (folder / "corrupt.png").write_bytes(b"this is not an image at all")
    (folder / "truncated.png").write_bytes(png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[:300])
    manifest = build_shards(clean_recipe(folder), tmp_path / "out", progress=False)
    assert manifest.counts("train") == {"denoise": 1}
    reasons = {r.file: r.reason for r in manifest.rejections}
    assert set(reasons) == {"corrupt.png", "truncated.png"}
    assert all("cannot decode" in r for r in reasons.values())


def test_grayscale_rgba_16bit_palette_converted_and_recorded(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    ramp = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    (folder / "gray.png").write_bytes(png_bytes(ramp, "L"))
    rgba = np.dstack([np.full((16, 16, 3), 10, np.uint8), np.full((16, 16), 0, np.uint8)])  # fully transparent
    (folder / "rgba.png").write_bytes(png_bytes(rgba, "RGBA"))
    Image.fromarray(ramp.astype(np.uint16) * 257).save(folder / "deep.png")  # mode I;16
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "pal.png")
    build_shards(clean_recipe(folder), tmp_path / "out", progress=False)
    by_file = {s.meta["files"]["gt"]: s for s in iter_samples(tmp_path / "out", "train")}
    assert set(by_file) == {"gray.png", "rgba.png", "deep.png", "pal.png"}
    assert by_file["gray.png"].meta["conversions"] == ["gt: L->RGB"]
    assert by_file["rgba.png"].meta["conversions"] == [f"gt: RGBA->RGB ({ALPHA_DROPPED})"]
    assert (by_file["rgba.png"].gt == 10).all()  # alpha dropped as PIL convert('RGB') does: colour kept
    assert "16-bit scaled to 8-bit" in by_file["deep.png"].meta["conversions"][0]
    np.testing.assert_array_equal(by_file["deep.png"].gt[..., 0], ramp)  # 16-bit ramp maps back exactly
    assert by_file["pal.png"].meta["conversions"] == ["gt: P->RGB"]
    assert all(s.gt.dtype == np.uint8 and s.gt.shape == (16, 16, 3) for s in by_file.values())


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_dropped_exactly_like_the_reference_loaders(mode):
    # PromptIR/AdaIR/MoCE-IR read images with PIL convert("RGB"): the stored colour, alpha ignored.
    rng = np.random.default_rng(0)
    rgba = np.dstack([rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), rng.integers(0, 256, (12, 10), dtype=np.uint8)])
    img = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":
        img = img.convert("RGB").quantize(16)
        img.info["transparency"] = 3
    arr, conversions = to_rgb8(img)
    np.testing.assert_array_equal(arr, np.asarray(img.convert("RGB")))
    assert conversions == [f"{mode}->RGB ({ALPHA_DROPPED})"]
    assert read_image_bytes(png_bytes(rgba, "RGBA"))[1] == [f"RGBA->RGB ({ALPHA_DROPPED})"]  # hf bytes cells too


def test_pairs_of_different_sizes_and_unpartnered_degraded_images(tmp_path):
    for name, size in (("ok.png", 16), ("small.png", 12)):
        (tmp_path / "lq").mkdir(exist_ok=True)
        (tmp_path / "gt").mkdir(exist_ok=True)
        (tmp_path / "lq" / name).write_bytes(png_bytes(np.zeros((size, size, 3), np.uint8)))
        (tmp_path / "gt" / name).write_bytes(png_bytes(np.zeros((16, 16, 3), np.uint8)))
    (tmp_path / "lq" / "orphan.png").write_bytes(png_bytes(np.zeros((16, 16, 3), np.uint8)))
    recipe = validate_recipe({"name": "pairs", "sources": [paired_source(tmp_path)]})
    manifest = build_shards(recipe, tmp_path / "out", progress=False)
    assert manifest.counts("train") == {"derain": 1}
    reasons = sorted(r.reason for r in manifest.rejections)
    assert reasons[0].startswith("degraded image has no clean partner") and "orphan.png" in manifest.rejections[0].file
    assert reasons[1] == "size mismatch: degraded 12x12 vs clean 16x16"


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_missing_or_empty_source_folder(tmp_path, state):
    folder = tmp_path / "imgs"
    if state == "empty":
        folder.mkdir()
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.png").write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    second = {"name": "other", "task": "denoise", "split": "train", "kind": "synthetic",
              "images": {"folder": str(good)}, "degradation": NOISE}
    optional = {"name": "clean", "task": "denoise", "split": "train", "kind": "synthetic", "optional": True,
                "images": {"folder": str(folder)}, "degradation": NOISE}
    recipe = validate_recipe({"name": "bad", "sources": [optional, second]})
    manifest = build_shards(recipe, tmp_path / "out", progress=False)  # an optional source may be empty
    assert manifest.counts("train") == {"denoise": 1}
    assert manifest.rejections[0].file == str(folder)
    assert manifest.rejections[0].reason.startswith("folder not found" if state == "missing" else "no image files")
    with pytest.raises(BuildError, match=r"denoise.*imgs"):  # the empty source is named, with its folder
        build_shards(clean_recipe(folder), tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2/manifest.json").exists()


def test_a_task_with_zero_samples_fails_naming_it(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    (tmp_path / "lq").mkdir()
    (tmp_path / "gt").mkdir()
    (tmp_path / "lq" / "x.png").write_bytes(b"broken")
    (tmp_path / "gt" / "x.png").write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(BuildError, match=r"task derain \(train\) has no samples. First rejections: \[derain/train\] x.png"):
        build_shards(clean_recipe(folder, paired_source(tmp_path)), tmp_path / "out", progress=False)


def test_strict_fails_on_any_rejection_and_cli_exit_code(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    (folder / "b.png").write_bytes(b"junk")
    recipe = clean_recipe(folder)
    build_shards(recipe, tmp_path / "lenient", progress=False)  # fine without strict
    with pytest.raises(BuildError, match="1 input\\(s\\) rejected with --strict. First: \\[denoise/train\\] b.png"):
        build_shards(recipe, tmp_path / "strict", strict=True, progress=False)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(f"name: bad\nsources:\n  - {{name: clean, task: denoise, split: train, kind: synthetic, "
                           f"images: {{folder: {folder}}}, degradation: {{name: noise, sigmas: [25]}}}}\n")
    result = CliRunner().invoke(app, ["shards", "build", str(recipe_file), "--out", str(tmp_path / "c"), "--strict", "--no-progress"])
    assert result.exit_code == 1 and "b.png" in result.output and "Traceback" not in result.output


def test_keys_that_collide_after_sanitising_are_rejected(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.b.png", "a_b.png"):
        (folder / name).write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    manifest = build_shards(clean_recipe(folder), tmp_path / "out", progress=False)
    assert manifest.counts("train") == {"denoise": 1}
    assert "duplicate sample key" in manifest.rejections[0].reason
