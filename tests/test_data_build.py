"""Shard writer, manifest and reader: the contract in shards/README.md, determinism, interrupted
builds, verify, and the `anyir shards` / `anyir mix` commands."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from conftest import reseal_manifest, tiny_recipe_dict
from typer.testing import CliRunner

from anyir.cli import app
from anyir.data import build as build_module
from anyir.data.build import build_shards
from anyir.data.manifest import ManifestError, load_manifest
from anyir.data.reader import verify_shard_set
from anyir.data.recipe import validate_recipe
from anyir.data.samples import iter_samples
from anyir.data.shardset import ShardSet

runner = CliRunner()


def small_recipe(**overrides):
    raw = tiny_recipe_dict(name="small", shard_size=4)
    raw["sources"] = [s for s in raw["sources"] if s["task"] in ("denoise", "dehaze")]
    raw.update(overrides)
    return validate_recipe(raw)


def shard_hashes(shard_dir):
    return {p.relative_to(shard_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(shard_dir.rglob("*.tar"))}


def test_tiny_shards_manifest_contract(tiny_shards):
    m = load_manifest(tiny_shards)
    assert m.tasks("train") == ["deblur", "dehaze", "denoise", "derain", "lowlight"]
    assert m.counts("train") == {"deblur": 7, "dehaze": 5, "denoise": 12, "derain": 12, "lowlight": 4}
    assert m.counts("test") == {"deblur": 2, "dehaze": 2, "denoise": 6, "derain": 2, "lowlight": 2}
    assert len(m.shards("denoise", "train")) == 2 and len(m.shards("dehaze", "train")) == 1
    for shard in m.shards("denoise", "train"):
        data = (tiny_shards / shard.path).read_bytes()
        assert (shard.bytes, shard.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert sum(s.samples for s in m.shards("denoise", "train")) == 12
    assert m.recipe_name == "tiny" and len(m.recipe_hash) == 64 and m.default_balance == "uniform"
    assert m.repeats == {t: 1.0 for t in m.tasks("train")}
    with pytest.raises(ManifestError, match="no task 'rain'"):
        m.shards("rain", "train")


def test_samples_follow_the_format(tiny_shards):
    samples = list(iter_samples(tiny_shards, "train"))
    assert len(samples) == 40 and len({s.key for s in samples}) == 40
    for s in samples:
        assert "." not in s.key and s.gt.dtype.name == "uint8" and s.gt.shape == (48, 48, 3)
        assert (s.lq is None) == (s.meta["online_noise_sigma"] is not None) == (s.task == "denoise")
        assert s.meta["width"] == s.meta["height"] == 48 and s.meta["crop"]["size"] == 48
        if s.lq is not None:
            assert s.lq.shape == s.gt.shape and s.meta["degradation"]["name"] in ("rain", "haze", "blur", "lowlight")
    sigmas = sorted(s.meta["online_noise_sigma"] for s in samples if s.task == "denoise")
    assert sigmas == [15] * 4 + [25] * 4 + [50] * 4
    test = list(iter_samples(tiny_shards, "test", tasks=["derain"]))
    assert [s.gt.shape for s in test] == [(64, 64, 3)] * 2 and all(s.split == "test" for s in test)


def test_train_and_test_images_are_disjoint(tiny_shards):
    def sources(split):
        return {s.meta["files"]["gt"] for s in iter_samples(tiny_shards, split)}
    assert not sources("train") & sources("test")


def test_rebuild_is_byte_identical_for_1_and_2_workers(tmp_path):
    recipe = small_recipe()
    m1 = build_shards(recipe, tmp_path / "a", workers=1, progress=False)
    m2 = build_shards(recipe, tmp_path / "b", workers=2, progress=False)
    assert shard_hashes(tmp_path / "a") == shard_hashes(tmp_path / "b")
    assert (tmp_path / "a/manifest.json").read_bytes() == (tmp_path / "b/manifest.json").read_bytes()
    assert m1 == m2
    other = build_shards(small_recipe(seed=1), tmp_path / "c", progress=False)
    assert other.recipe_hash != m1.recipe_hash
    assert shard_hashes(tmp_path / "c")["dehaze/train-000000.tar"] != shard_hashes(tmp_path / "a")["dehaze/train-000000.tar"]


def verify_shards(shard_dir):
    return verify_shard_set(ShardSet.open(shard_dir))


def test_interrupted_rebuild_keeps_the_old_set_intact(tmp_path, monkeypatch):
    out = tmp_path / "set"
    old = build_shards(small_recipe(shard_size=2), out, progress=False)  # more shards than the rebuild below
    old_bytes = shard_hashes(out)
    real = build_module.write_shard
    calls = []

    def dying(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed ^C mid-build
        return real(job)

    monkeypatch.setattr(build_module, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        build_shards(small_recipe(), out, progress=False)
    assert load_manifest(out) == old and shard_hashes(out) == old_bytes and verify_shards(out) == []
    assert not list(tmp_path.glob(".set.*"))  # the staging folder went with the failure
    monkeypatch.setattr(build_module, "write_shard", real)
    (tmp_path / ".set.build-999999").mkdir()  # leftovers of a SIGKILLed build (dead pid)
    (out / "dehaze/.train-000000.tar.tmp-999999").write_bytes(b"partial")
    (out / ".manifest.json.tmp-999999").write_text("{")
    manifest = build_shards(small_recipe(), out, progress=False)
    listed = {s.path for s in manifest.all_shards()}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert on_disk == listed  # stale shards of the old, bigger build and temp files are gone
    assert not list(tmp_path.glob(".set.*")) and verify_shards(out) == []


def test_a_failing_rebuild_with_a_wrong_root_leaves_the_good_set_usable(tmp_path):
    out = tmp_path / "set"
    good = build_shards(small_recipe(), out, progress=False)
    broken = small_recipe(sources=[{"name": "gone", "task": "dehaze", "split": "train", "kind": "paired",
                                    "lq_dir": str(tmp_path / "nope/lq"), "gt_dir": str(tmp_path / "nope/gt")}])
    with pytest.raises(build_module.BuildError, match="source 'gone'.*yields no samples"):
        build_shards(broken, out, progress=False)
    assert load_manifest(out) == good and verify_shards(out) == []


def test_refuses_to_replace_a_folder_that_is_not_a_shard_set(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home/thesis.tex").write_text("precious")
    with pytest.raises(build_module.BuildError, match="not a shard set"):
        build_shards(small_recipe(), tmp_path / "home", progress=False)
    assert (tmp_path / "home/thesis.tex").read_text() == "precious"


def test_reader_ignores_unknown_members_and_never_unpickles(tmp_path):
    build_shards(small_recipe(), tmp_path, progress=False)
    shard = tmp_path / "dehaze/test-000000.tar"
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    first_key = members[0][0].name.partition(".")[0]
    payload = b"cos\nsystem\n(S'touch /tmp/anyir_pwned'\ntR."
    with tarfile.open(shard, "w") as tar:  # a tampered shard: the first sample also carries a pickle
        for info, data in [(tarfile.TarInfo(f"{first_key}.pyd"), payload), *members]:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    reseal_manifest(tmp_path)  # even when the manifest lists the tampered tar, the pickle is never read
    samples = list(iter_samples(tmp_path, "test", tasks=["dehaze"]))
    assert len(samples) == 2
    assert not (tmp_path.parent / "anyir_pwned").exists()


def test_verify_detects_a_modified_shard_and_cli_exits_1(tmp_path):
    build_shards(small_recipe(), tmp_path, progress=False)
    assert runner.invoke(app, ["shards", "verify", str(tmp_path)]).exit_code == 0
    shard = tmp_path / "dehaze/train-000000.tar"
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    (problem,) = verify_shards(tmp_path)
    assert problem.startswith("dehaze/train-000000.tar: sha256 differs from the manifest")
    result = runner.invoke(app, ["shards", "verify", str(tmp_path)])
    assert result.exit_code == 1 and "dehaze/train-000000.tar" in result.output


def test_repeat_factor_recorded_not_duplicated(tmp_path):
    raw = tiny_recipe_dict(name="rep", shard_size=64)
    for s in raw["sources"]:
        s["repeat"] = 2.5 if s["task"] == "derain" else 1.0
    manifest = build_shards(validate_recipe(raw), tmp_path, progress=False)
    assert manifest.repeats["derain"] == 2.5 and manifest.counts("train")["derain"] == 12
    extra = {"name": "more_rain", "task": "derain", "split": "train", "kind": "synthetic", "repeat": 1.0,
             "images": {"skimage": ["gravel", "text"]}, "crop": {"size": 48, "per_image": 2}, "degradation": {"name": "rain"}}
    raw["sources"].append(extra)
    manifest = build_shards(validate_recipe(raw), tmp_path / "mixed", progress=False)
    assert manifest.counts("train")["derain"] == 16 and manifest.repeats["derain"] == (12 * 2.5 + 4) / 16


def test_cli_build_inspect_and_mix_plan(tmp_path):
    recipe_path = tmp_path / "small.yaml"
    recipe_path.write_text(json.dumps(small_recipe().model_dump(mode="json")))  # JSON is YAML
    out = tmp_path / "set"
    result = runner.invoke(app, ["shards", "build", str(recipe_path), "--out", str(out), "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "denoise" in result.output and (out / "manifest.json").is_file()
    result = runner.invoke(app, ["shards", "inspect", str(out)])
    assert result.exit_code == 0 and "dehaze" in result.output and "0.500" in result.output
    result = runner.invoke(app, ["mix", "plan", str(out), "--balance", "natural", "--total", "10"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line.split()[-2] for line in result.output.splitlines() if line.startswith("│")}
    assert rows == {"dehaze": "3", "denoise": "7"}  # 4 vs 12 available: 2.5 / 7.5, the tie goes to the first name
    result = runner.invoke(app, ["mix", "plan", str(out), "--balance", "bogus"])
    assert result.exit_code == 2 and "unknown strategy" in result.output


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    result = runner.invoke(app, ["shards", "inspect", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no manifest.json" in result.output
    result = runner.invoke(app, ["shards", "build", "no_such_recipe", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "shipped recipes: " in result.output and "Traceback" not in result.output


def test_max_samples_caps_with_a_fixed_random_subset(tmp_path):
    raw = tiny_recipe_dict(name="cap", shard_size=64)
    raw["sources"] = [s for s in raw["sources"] if s["task"] == "derain"]
    every = sorted(i.key for i in build_module.scan_recipe(validate_recipe(raw)).items if i.split == "train")
    raw["sources"][0]["max_samples"] = 5
    recipe = validate_recipe(raw)
    build_shards(recipe, tmp_path / "a", progress=False)
    build_shards(recipe, tmp_path / "b", progress=False)
    keys = [s.key for s in iter_samples(tmp_path / "a", "train")]
    assert len(keys) == 5 and keys == [s.key for s in iter_samples(tmp_path / "b", "train")]
    assert set(keys) < set(every) and keys != every[:5]  # a seeded subset, not the first names


def test_hub_dataset_unreachable_offline_is_a_clear_rejection(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raw = {"name": "hub", "sources": [{"name": "cdd", "task": "low", "split": "test", "kind": "hf",
                                       "hub": "anyir-test/definitely-not-cached", "gt_column": "clear", "lq_column": "low"}]}
    scan = build_module.scan_recipe(validate_recipe(raw))
    items, rejections = scan.items, scan.rejections
    assert not items and rejections[0].file == "anyir-test/definitely-not-cached"
    assert rejections[0].reason.startswith("cannot open dataset")


def test_cli_mix_plan_on_a_recipe_scans_without_building():
    result = runner.invoke(app, ["mix", "plan", "demo", "--balance", "promptir", "--total", "1000"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: int(line.split()[-2]) for line in result.output.splitlines() if line.startswith("│")}
    assert sum(rows.values()) == 1000 and rows["derain"] > rows["deblur"] > rows["dehaze"]  # factors 120 > 5 > 1


def test_online_noise_sigmas_share_their_crop_and_keys_stay_dot_free(tiny_shards):
    crops = {}
    for s in iter_samples(tiny_shards, "train", tasks=["denoise"]):
        crops.setdefault(s.meta["files"]["gt"], set()).add(tuple(s.meta["crop"].values()))
    assert len(crops) == 4 and all(len(boxes) == 1 for boxes in crops.values())
    raw = tiny_recipe_dict()
    raw["sources"] = [{**raw["sources"][0], "degradation": {"name": "noise", "sigmas": [12.5]}}]
    items = build_module.scan_recipe(validate_recipe(raw)).items
    assert items[0].key.endswith("__s12p5") and "." not in items[0].key
