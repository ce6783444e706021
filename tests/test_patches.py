"""Train images cut into overlapping patches: geometry and coverage, keys and metadata, exact
rebuilds, and counting in source samples (manifest, balance, stream epochs, resume)."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections import Counter

import numpy as np
import pytest
from conftest import tiny_recipe_dict

from anyir.data.balance import resolve_weights
from anyir.data.build import build_shards
from anyir.data.patches import (
    choose_patch,
    item_ranges,
    max_full_coverage_crop,
    overlap_factor,
    patch_boxes,
    patch_origins,
)
from anyir.data.reader import ShardCorrupt
from anyir.data.recipe import RecipeError, validate_recipe
from anyir.data.samples import iter_samples
from anyir.data.stream import MixtureStream

PATCH = {"size": 32, "stride": 16}  # the tiny set's 48 px train crops -> 2 x 2 patches each


def patched_recipe(name: str = "tiny_patched", **encoding) -> dict:
    return {**tiny_recipe_dict(name), "encoding": {"format": "npy", "patch": PATCH, **encoding}}


@pytest.fixture(scope="module")
def patched(tmp_path_factory):
    out = tmp_path_factory.mktemp("patched")
    build_shards(validate_recipe(patched_recipe()), out, workers=1, progress=False)
    return out


# ---------------------------------------------------------------------------- geometry


def test_origins_step_by_stride_and_end_flush_with_the_edge():
    assert patch_origins(48, 32, 16) == [0, 16]
    assert patch_origins(50, 32, 16) == [0, 16, 18]
    assert patch_origins(20, 32, 16) == [0]  # shorter than a patch: one patch of the whole side
    assert patch_boxes(20, 50, 32, 16) == [(0, 0, 20, 32), (0, 16, 20, 32), (0, 18, 20, 32)]
    with pytest.raises(ValueError, match="stride"):
        patch_origins(64, 32, 33)


@pytest.mark.parametrize(("size", "stride"), [(32, 16), (32, 17), (24, 7), (16, 16), (20, 1)])
def test_every_crop_up_to_the_bound_lies_in_a_patch_and_one_pixel_more_does_not(size, stride):
    bound = max_full_coverage_crop(size, stride)
    for length in range(size, 3 * size + 5):
        origins = patch_origins(length, size, stride)
        for crop in range(1, bound + 1):
            for x in range(length - crop + 1):
                assert any(o <= x and x + crop <= o + size for o in origins), (length, crop, x)
    if stride > 1:  # the bound is tight: some position of a larger crop is unreachable
        crop, length = bound + 1, 3 * size
        origins = patch_origins(length, size, stride)
        assert not all(any(o <= x and x + crop <= o + size for o in origins) for x in range(length - crop + 1))


def test_overlap_factor_is_the_disk_multiplier():
    assert overlap_factor(720, 1280, 256, 128) == pytest.approx(45 * 256 * 256 / (720 * 1280))  # 3.2
    assert overlap_factor(100, 100, 256, 128) == 1.0  # small images are stored once
    assert overlap_factor(512, 512, 256, 256) == 1.0


def test_item_ranges_group_consecutive_patches_and_choice_is_seeded():
    assert item_ranges(["a", "a", "b", "c", "c", "c"]) == [(0, 2), (2, 3), (3, 6)]
    assert item_ranges([]) == []
    draws = [choose_patch(4, 0, 1, "derain", q) for q in range(400)]
    assert draws == [choose_patch(4, 0, 1, "derain", q) for q in range(400)]
    assert set(Counter(draws)) == {0, 1, 2, 3} and min(Counter(draws).values()) > 60
    assert choose_patch(1, 0, 1, "derain", 5) == 0


def test_recipe_validates_the_patch_spec():
    with pytest.raises(RecipeError, match="stride 40 > size 32"):
        validate_recipe(patched_recipe(patch={"size": 32, "stride": 40}))
    with pytest.raises(RecipeError, match="encoding.patch.size"):
        validate_recipe(patched_recipe(patch={"size": 8, "stride": 4}))


# ---------------------------------------------------------------------------- the built set


def test_manifest_counts_patches_as_samples_and_source_images_as_items(patched, tiny_shards):
    from anyir.data.manifest import load_manifest

    m, whole = load_manifest(patched), load_manifest(tiny_shards)
    assert m.encoding == {"format": "npy", "compress_level": 1, "patch": PATCH}
    for task, ts in m.splits["train"].items():
        base = whole.splits["train"][task]
        assert ts.items == base.samples and ts.samples == 4 * base.samples  # 48 px crops: 4 patches each
        assert ts.datasets == base.datasets  # datasets count source samples
        assert [s.items for s in ts.shards] == [s.samples for s in base.shards]
    assert m.counts("train") == whole.counts("train")  # balances count source samples
    assert m.repeats == whole.repeats
    assert resolve_weights("natural", m.counts("train"), m.repeats) == \
        resolve_weights("natural", whole.counts("train"), whole.repeats)
    for task, ts in m.splits["test"].items():  # test images stay whole, in PNG
        assert ts.samples == ts.items == whole.splits["test"][task].samples
        with tarfile.open(patched / ts.shards[0].path) as tar:
            assert {n.split(".", 1)[1] for n in tar.getnames()} <= {"gt.png", "lq.png", "json"}


def test_patches_are_exact_windows_of_the_source_with_their_metadata(patched, tiny_shards):
    sources = {s.key: s for s in iter_samples(tiny_shards, "train")}
    seen = Counter()
    for sample in iter_samples(patched, "train"):
        meta, p = sample.meta, sample.meta["patch"]
        item = sources[meta["item"]]
        assert sample.key == f"{meta['item']}__p{p['index']}" and "." not in sample.key
        assert (p["count"], p["source_height"], p["source_width"]) == (4, 48, 48)
        assert (meta["height"], meta["width"]) == sample.gt.shape[:2] == (32, 32)
        window = (slice(p["top"], p["top"] + 32), slice(p["left"], p["left"] + 32))
        np.testing.assert_array_equal(sample.gt, item.gt[window])
        if item.lq is None:
            assert sample.lq is None and meta["online_noise_sigma"] == item.meta["online_noise_sigma"]
        else:
            np.testing.assert_array_equal(sample.lq, item.lq[window])
        seen[meta["item"]] += 1
    assert seen == {k: 4 for k in sources}


def test_patched_rebuild_is_byte_identical_for_any_worker_count(patched, tmp_path):
    build_shards(validate_recipe(patched_recipe()), tmp_path / "again", workers=2, progress=False)
    tars = sorted(p.relative_to(patched) for p in patched.rglob("*.tar"))
    assert tars == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.tar"))
    for rel in tars:
        assert (tmp_path / "again" / rel).read_bytes() == (patched / rel).read_bytes(), rel
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (patched / "manifest.json").read_bytes()


# ---------------------------------------------------------------------------- the stream


def stream(shards, weights="natural", **kw) -> MixtureStream:
    kw.setdefault("batch_size", 2)
    kw.setdefault("crop", 16)
    return MixtureStream(shards, weights, **kw)


def item_of(key: str) -> str:
    return key.rsplit("__p", 1)[0]


def test_natural_epoch_visits_every_source_sample_once_with_a_random_patch(patched, tiny_shards):
    s = stream(patched)
    assert s.counts == stream(tiny_shards).counts and s.samples_per_epoch == 40
    epochs = [[k for b in s for k in b["key"]] for _ in range(3)]
    items = Counter(item_of(k) for k in epochs[0])
    assert items == Counter(s.key for s in iter_samples(tiny_shards, "train"))  # each source sample once
    patches = Counter(k.rsplit("__p", 1)[1] for keys in epochs for k in keys)
    assert set(patches) == {"0", "1", "2", "3"}  # visits spread over the patches
    assert epochs[0] != epochs[1]


def test_exact_counts_over_ranks_and_workers_in_source_samples(patched):
    for rank in range(2):
        s = stream(patched, "uniform", rank=rank, world_size=2, num_workers=2, samples_per_epoch=40)
        for w in range(2):  # each worker makes its slice of every step
            assert [st for st, _ in s.iter_worker(w, 0)] == list(range(10))
    s0 = stream(patched, "uniform", rank=0, world_size=2, num_workers=2, samples_per_epoch=40)
    s1 = stream(patched, "uniform", rank=1, world_size=2, num_workers=2, samples_per_epoch=40)
    seen = Counter(t for s in (s0, s1) for w in range(2) for _, b in s.iter_worker(w, 0) for t in b["task"])
    assert seen == {t: 8 for t in s0.tasks}


def test_resume_mid_epoch_gives_the_same_patches_crops_and_flips(patched):
    full = stream(patched, "uniform", samples_per_epoch=30)
    batches = list(full)
    part = stream(patched, "uniform", samples_per_epoch=30)
    it = iter(part)
    for _ in range(6):
        next(it)
    state = part.state_dict()
    resumed = stream(patched, "uniform", samples_per_epoch=30)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [b["key"] for b in rest] == [b["key"] for b in batches[6:]]
    for a, b in zip(rest, batches[6:], strict=True):
        assert (a["lq"] == b["lq"]).all() and (a["gt"] == b["gt"]).all()


def test_crop_larger_than_the_patches_fails_and_one_past_the_coverage_bound_warns(patched):
    with pytest.raises(ValueError, match=r"crop=40 is larger than the 32 px train patches"):
        stream(patched, crop=40)
    with pytest.warns(UserWarning, match="crops up to 17 px reach every position"):
        stream(patched, crop=24)
    with pytest.warns(UserWarning, match="straddle"):
        batch = next(iter(stream(patched, crop=32)))  # exactly the patch size: allowed
    assert batch["gt"].shape == (2, 3, 32, 32)


def test_patches_that_do_not_group_into_the_manifests_items_skip_the_shard(patched, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(patched, shards)
    path = shards / "manifest.json"
    raw = json.loads(path.read_text())
    ts = raw["splits"]["train"]["lowlight"]
    ts["shards"][0]["items"] = ts["items"] = 5  # the tar holds 4 items (16 patches)
    ts["datasets"] = {"tiny": 5}
    path.write_text(json.dumps(raw))
    with pytest.raises(ShardCorrupt, match="belong to 4 source samples, the manifest says 5"):
        list(stream(shards, {"lowlight": 1.0}, samples_per_epoch=4, strict_shards=True))
