"""Shard set -> `anyir shards to-hf` -> datasets.load_from_disk -> a recipe of `hf` sources -> shards:
the same pixels, keys and noise sigmas come back (offline; conftest sets HF_*_OFFLINE)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from anyir.cli import app
from anyir.data.build import build_shards
from anyir.data.hf_export import COLUMNS, export_hf, readback_sources
from anyir.data.recipe import validate_recipe
from anyir.data.samples import iter_samples

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def exported(tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "tiny_hf"
    result = CliRunner().invoke(app, ["shards", "to-hf", str(tiny_shards), str(out)])
    assert result.exit_code == 0, result.output
    return out


def _originals(shards) -> dict[str, object]:
    return {s.key: s for split in ("train", "test") for s in iter_samples(shards, split)}


def test_export_has_one_schema_for_every_sample(exported, tiny_shards):
    loaded = datasets.load_from_disk(str(exported))
    assert isinstance(loaded, datasets.DatasetDict) and sorted(loaded) == ["test", "train"]
    originals = _originals(tiny_shards)
    for split, part in loaded.items():
        assert tuple(part.column_names) == COLUMNS
        assert isinstance(part.features["gt"], datasets.Image) and isinstance(part.features["lq"], datasets.Image)
        assert part.features["online_noise_sigma"] == datasets.Value("float64")
        assert set(part["split"]) == {split}
        for row in part:
            sample = originals[row["key"]]
            assert (row["task"], row["dataset"]) == (sample.task, sample.dataset)
            assert json.loads(row["meta"]) == sample.meta
            assert np.array_equal(np.asarray(row["gt"]), sample.gt)
            if sample.lq is None:  # online noise: no stored degraded image, the sigma instead
                assert row["lq"] is None and row["online_noise_sigma"] == sample.meta["online_noise_sigma"]
            else:
                assert np.array_equal(np.asarray(row["lq"]), sample.lq) and row["online_noise_sigma"] is None
    assert sum(len(p) for p in loaded.values()) == len(originals)


def test_hf_sources_read_the_export_back_to_identical_pixels(exported, tiny_shards, tmp_path):
    sources = readback_sources(exported)
    assert {s["task"] for s in sources} == {"denoise", "derain", "dehaze", "deblur", "lowlight"}
    recipe = validate_recipe({"name": "tiny_from_hf", "seed": 0, "shard_size": 8, "sources": sources})
    build_shards(recipe, tmp_path / "back", workers=1, progress=False)
    originals = _originals(tiny_shards)
    rebuilt = _originals(tmp_path / "back")
    assert len(rebuilt) == len(originals)
    names = {s["name"] for s in sources}
    for key, sample in rebuilt.items():
        source, _, original_key = key.partition("__")
        assert source in names
        sigma = sample.meta["online_noise_sigma"]
        if sigma is not None:  # the noise sigma comes back as an online-noise degradation
            suffix = f"__s{sigma:g}"
            assert original_key.endswith(suffix)
            original_key = original_key.removesuffix(suffix)
        original = originals[original_key]
        assert (sample.task, sample.split, sample.dataset) == (original.task, original.split, original.dataset)
        assert sigma == original.meta["online_noise_sigma"]
        assert np.array_equal(sample.gt, original.gt)
        assert (sample.lq is None) == (original.lq is None)
        if sample.lq is not None:
            assert np.array_equal(sample.lq, original.lq)


def test_where_filters_rows_and_names_a_miss(exported, tmp_path):
    from anyir.data.build import scan_recipe

    source = {"name": "only_derain", "task": "derain", "split": "test", "kind": "hf", "path": str(exported),
              "hf_split": "test", "gt_column": "gt", "lq_column": "lq", "key_column": "key",
              "where": {"task": "derain"}}
    scan = scan_recipe(validate_recipe({"name": "w", "sources": [source]}))
    assert len(scan.sources) == 1 and scan.sources[0].items == 2
    missing = {**source, "where": {"task": "desnow"}}
    scan = scan_recipe(validate_recipe({"name": "w", "sources": [missing]}))
    assert "no row of 14 has where={'task': 'desnow'}" in scan.rejections[0].reason


def test_where_leaves_older_hf_recipes_hash_unchanged():
    source = {"name": "s", "task": "derain", "split": "test", "kind": "hf", "path": "x"}
    plain = validate_recipe({"name": "r", "sources": [source]})
    assert "where" not in json.dumps(plain.model_dump(mode="json"))
    filtered = validate_recipe({"name": "r", "sources": [{**source, "where": {"task": "derain"}}]})
    assert filtered.content_hash() != plain.content_hash()


def test_export_refuses_an_existing_folder_and_unknown_splits(tiny_shards, tmp_path):
    (tmp_path / "taken").mkdir()
    result = CliRunner().invoke(app, ["shards", "to-hf", str(tiny_shards), str(tmp_path / "taken")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    with pytest.raises(ValueError, match="not in"):
        export_hf(tiny_shards, tmp_path / "x", splits=["val"])
    assert not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no staging folder left behind


def test_a_damaged_shard_fails_the_export_in_one_line(tiny_shards, tmp_path):
    import shutil

    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    tar = sorted(shards.rglob("*.tar"))[0]
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["shards", "to-hf", str(shards), str(tmp_path / "out"), "--split", "train",
                                      "--split", "test"])
    assert result.exit_code == 1 and "nothing was written" in result.output
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_the_docs_section_matches_the_code():
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "datasets.md").read_text(encoding="utf-8")
    section = text.split("## Hugging Face datasets, both directions", 1)[1]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:  # each example is a valid source
        validate_recipe({"name": "doc", "sources": yaml.safe_load(block)})
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    assert tuple(re.findall(r"`(\w+)`", " ".join(first_cells))) == COLUMNS  # the column table
