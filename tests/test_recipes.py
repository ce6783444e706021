"""Recipes: shipped ones validate, errors name file and key, data roots, and aio3 from a fake tree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anyir.data.build import scan_counts
from anyir.data.recipe import RecipeError, available_recipes, load_recipe


def test_every_shipped_recipe_validates():
    assert {"demo", "aio3", "aio3_rebalanced", "aio5", "cdd11"} <= set(available_recipes())
    for name in available_recipes():
        recipe = load_recipe(name)
        assert recipe.name == name and len(recipe.content_hash()) == 64


def test_demo_train_and_test_images_are_disjoint_and_cover_five_tasks():
    recipe = load_recipe("demo")
    images = {split: {img for s in recipe.sources if s.split == split for img in s.images.skimage} for split in ("train", "test")}
    assert images["train"] and images["test"] and not images["train"] & images["test"]
    assert {t for t, _ in recipe.task_splits()} == {"denoise", "derain", "dehaze", "deblur", "lowlight"}


def test_cdd11_has_eleven_tasks_per_split():
    recipe = load_recipe("cdd11")
    assert len([1 for _, split in recipe.task_splits() if split == "train"]) == 11


def test_unknown_key_and_wrong_type_name_the_file_and_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nshard_sise: 10\nsources:\n  - {name: a, task: t, split: train, kind: synthetic,"
                    " images: {skimage: [camera]}, degradation: {name: haze, beta: fast}}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert str(path) in text and "shard_sise: Extra inputs are not permitted" in text
    assert "sources.0.synthetic.degradation.haze.beta" in text


def test_bad_balance_and_missing_recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\ndefault_balance: tempreature:2\nsources:\n  - {name: a, task: t, split: train, "
                    "kind: synthetic, images: {skimage: [camera]}, degradation: {name: haze}}\n")
    with pytest.raises(RecipeError, match="default_balance.*unknown strategy"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="shipped recipes: .*demo"):
        load_recipe("nope")


def test_data_root_is_required_and_taken_from_flag_or_env(tmp_path, monkeypatch):
    monkeypatch.delenv("ANYIR_DATA_ROOT", raising=False)
    with pytest.raises(RecipeError, match="--data-root DIR or set ANYIR_DATA_ROOT"):
        load_recipe("aio3").resolve("${data_root}/x")
    assert load_recipe("aio3", data_root=tmp_path).resolve("${data_root}/x") == tmp_path / "x"
    monkeypatch.setenv("ANYIR_DATA_ROOT", str(tmp_path / "env"))
    assert load_recipe("aio3").resolve("${data_root}/x") == tmp_path / "env/x"
    assert load_recipe("aio3").content_hash() == load_recipe("aio3", data_root=tmp_path).content_hash()


def _put(path, level=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(path)


def test_aio3_on_a_fake_promptir_tree_counts_and_plans(tmp_path):
    for name in ("00001.bmp", "00002.bmp", "117025.jpg"):
        _put(tmp_path / "data/Train/Denoise" / name)
    for n in (1, 2):
        _put(tmp_path / f"data/Train/Derain/rainy/rain-{n}.png")
        _put(tmp_path / f"data/Train/Derain/gt/norain-{n}.png")
    for hazy in ("0025_0.8_0.04", "0025_1_0.2", "0026_0.9_0.1", "0026_1_0.1"):
        _put(tmp_path / f"data/Train/Dehaze/synthetic/part1/{hazy}.jpg")
    for ident in ("0025", "0026"):
        _put(tmp_path / f"data/Train/Dehaze/original/{ident}.jpg")
    counts, repeats = scan_counts(load_recipe("aio3", data_root=tmp_path))
    assert counts == {"dehaze": 4, "denoise": 9, "derain": 2}
    assert repeats == {"dehaze": 1.0, "denoise": 3.0, "derain": 120.0}


def _pair(root, lq, gt):
    _put(root / gt, 120)
    _put(root / lq, 80)


def _fake_adair_tree(root):
    for name in ("00001.bmp", "117025.jpg"):
        _put(root / "data/Train/Denoise" / name)
    _pair(root, "data/Train/Derain/rainy/rain-1.png", "data/Train/Derain/gt/norain-1.png")
    _pair(root, "data/Train/Dehaze/synthetic/part1/0025_0.8_0.04.jpg", "data/Train/Dehaze/original/0025.jpg")
    _pair(root, "data/Train/Deblur/blur/GOPR0372_07_00_000047.png", "data/Train/Deblur/sharp/GOPR0372_07_00_000047.png")
    _pair(root, "data/Train/Enhance/low/2.png", "data/Train/Enhance/gt/2.png")
    _put(root / "data/test/denoise/bsd68/3096.jpg")
    _pair(root, "data/test/derain/Rain100L/input/1.png", "data/test/derain/Rain100L/target/1.png")
    _pair(root, "data/test/dehaze/input/0001_0.8_0.2.jpg", "data/test/dehaze/target/0001.png")
    _pair(root, "data/test/deblur/gopro/input/GOPR0384_11_00_000001.png", "data/test/deblur/gopro/target/GOPR0384_11_00_000001.png")
    _pair(root, "data/test/enhance/lol/input/1.png", "data/test/enhance/lol/target/1.png")


def _fake_cdd11_tree(root):
    subs = ["low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
            "low_haze_rain", "low_haze_snow"]
    for split in ("train", "test"):
        for sub in subs:
            _pair(root, f"cdd11/CDD-11_{split}/{sub}/001.png", f"cdd11/CDD-11_{split}/clear/001.png")


def _fake_zeroshot_tree(root):
    _pair(root, "CSD/Test/Snow/1.tif", "CSD/Test/Gt/1.tif")
    for n in range(3):
        _pair(root, f"UIEB/raw-890/{n}_img_.png", f"UIEB/reference-890/{n}_img_.png")


@pytest.mark.parametrize("name,make,expected", [
    ("aio5", _fake_adair_tree, {"train": {"denoise": 6, "derain": 1, "dehaze": 1, "deblur": 1, "lowlight": 1},
                                "test": {"denoise": 1, "derain": 1, "dehaze": 1, "deblur": 1, "lowlight": 1}}),
    ("cdd11", _fake_cdd11_tree, {"train": 11, "test": 11}),
    ("zeroshot", _fake_zeroshot_tree, {"test": {"desnow": 1, "underwater": 3}}),
])
def test_shipped_recipes_build_from_fake_trees_in_their_layouts(tmp_path, name, make, expected):
    from anyir.data.build import build_shards

    make(tmp_path / "root")
    manifest = build_shards(load_recipe(name, data_root=tmp_path / "root"), tmp_path / "out", progress=False)
    for split, want in expected.items():
        counts = manifest.counts(split)
        assert (len(counts) == want and set(counts.values()) == {1}) if isinstance(want, int) else counts == want
    assert not manifest.rejections


def test_synthetic_source_with_a_composition_records_every_step(tmp_path):
    from anyir.data.build import build_shards
    from anyir.data.recipe import validate_recipe
    from anyir.data.samples import iter_samples

    steps = [{"name": "lowlight", "gamma": 1.5}, {"name": "haze"}, {"name": "rain", "density": 0.01}]
    recipe = validate_recipe({"name": "combo", "sources": [
        {"name": "lhr", "task": "low_haze_rain", "split": "test", "kind": "synthetic", "images": {"skimage": ["coffee"]},
         "crop": {"size": 32, "mode": "center"}, "degradation": {"name": "compose", "steps": steps}}]})
    build_shards(recipe, tmp_path, progress=False)
    (sample,) = iter_samples(tmp_path, "test")
    used = sample.meta["degradation"]
    assert used["name"] == "compose" and [s["name"] for s in used["steps"]] == ["lowlight", "haze", "rain"]
    assert used["steps"][0]["gamma"] == 1.5 and used["steps"][2]["density"] == 0.01
    assert sample.lq.mean() != sample.gt.mean()
