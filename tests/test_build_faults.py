"""The shard build under faults: a killed build leaves the old set usable and no orphan workers,
problems found by the scan fail before any image is encoded, hand-edited manifests are refused,
and ``shards plan`` / ``--dry-run`` show what a build would read without writing anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_recipe_dict
from typer.testing import CliRunner

from anyir.cli import app
from anyir.data import build as build_module
from anyir.data.build import BuildError, build_shards
from anyir.data.manifest import ManifestError, load_manifest
from anyir.data.reader import verify_shard_set
from anyir.data.recipe import validate_recipe
from anyir.data.shardset import ShardSet

runner = CliRunner()


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def slow_recipe_file(tmp_path: Path) -> Path:
    """A recipe whose encode takes several seconds with 2 workers (many crops, small shards)."""
    raw = tiny_recipe_dict(name="slow", shard_size=2)
    for source in raw["sources"]:
        if source["split"] == "train":
            source["crop"] = {"size": 160, "per_image": 12}
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_sigkill_of_a_two_worker_rebuild_leaves_the_old_set_and_no_orphans(tmp_path):
    out = tmp_path / "set"
    old = build_shards(validate_recipe(tiny_recipe_dict(name="slow", shard_size=8)), out, progress=False)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "anyir", "shards", "build", str(slow_recipe_file(tmp_path)),
                             "--out", str(out), "--workers", "2", "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until workers are encoding into the staging folder
        found = list(tmp_path.glob(".set.build-*/*/*.tar"))
        if found and len(children_of(proc.pid)) >= 2:
            staging = found[0].parents[1]
            break
        time.sleep(0.05)
    assert staging is not None, "the build never started encoding"
    workers = children_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if alive(w)], "pool workers outlived the killed build"
    assert load_manifest(out) == old and verify_shard_set(ShardSet.open(out)) == []
    assert staging.is_dir()  # what the killed build left behind ...
    build_shards(validate_recipe(tiny_recipe_dict(name="slow", shard_size=8)), out, progress=False)
    assert not staging.exists()  # ... is cleaned by the next build


def test_an_empty_source_fails_before_any_image_is_encoded(tmp_path, monkeypatch):
    raw = tiny_recipe_dict(name="typo")
    raw["sources"].append({"name": "gopro_typo", "task": "deblur", "split": "train", "kind": "paired",
                           "lq_dir": str(tmp_path / "GoPro/blurr"), "gt_dir": str(tmp_path / "GoPro/sharp")})
    calls = []
    monkeypatch.setattr(build_module, "write_shard", lambda job: calls.append(job))
    with pytest.raises(BuildError, match=r"source 'gopro_typo' \(deblur/train\) yields no samples.*nothing was encoded"):
        build_shards(validate_recipe(raw), tmp_path / "out", progress=False)
    assert calls == [] and not (tmp_path / "out").exists()
    raw["sources"][-1]["optional"] = True  # the same recipe builds when the source is marked optional
    monkeypatch.undo()
    manifest = build_shards(validate_recipe(raw), tmp_path / "out", progress=False)
    assert manifest.sources["gopro_typo"].items == 0 and manifest.sources["gopro_typo"].optional


def test_strict_fails_at_the_scan_when_the_scan_already_rejects(tmp_path, monkeypatch):
    raw = tiny_recipe_dict(name="strict")
    raw["sources"].append({"name": "empty_opt", "task": "deblur", "split": "train", "kind": "paired",
                           "optional": True, "lq_dir": str(tmp_path / "no/lq"), "gt_dir": str(tmp_path / "no/gt")})
    calls = []
    monkeypatch.setattr(build_module, "write_shard", lambda job: calls.append(job))
    with pytest.raises(BuildError, match="rejected with --strict \\(nothing was encoded\\)"):
        build_shards(validate_recipe(raw), tmp_path / "out", strict=True, progress=False)
    assert calls == []


def _edit_manifest(shard_dir: Path, edit) -> None:
    path = shard_dir / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("edit, expected", [
    (lambda m: m["splits"]["train"]["dehaze"]["shards"][0].update(samples=-5), "greater than or equal to 1"),
    (lambda m: m["splits"]["train"]["dehaze"].update(samples=0), "greater than or equal to 1"),
    (lambda m: m["repeats"].update(dehaze=-1.0), "repeat factors must be finite and > 0"),
    (lambda m: m["splits"]["train"]["dehaze"]["shards"][0].update(path="../../etc/passwd.tar"), "should match pattern"),
    (lambda m: m["splits"]["train"]["dehaze"]["shards"][0].update(path="derain/train-000000.tar"),
     "is listed under task 'dehaze'"),
    (lambda m: m["splits"]["train"]["dehaze"].update(samples=4), "but its shards hold 5"),
    (lambda m: m.update(format_version=1), "format_version 1"),
])
def test_hand_edited_manifests_are_refused_in_one_line(tiny_shards, tmp_path, edit, expected):
    import shutil

    shards = tmp_path / "s"
    shutil.copytree(tiny_shards, shards)
    _edit_manifest(shards, edit)
    with pytest.raises(ManifestError, match=expected) as err:
        load_manifest(shards)
    assert "\n" not in str(err.value)
    result = runner.invoke(app, ["shards", "inspect", str(shards)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_verify_checks_counts_and_keys_not_only_bytes(tiny_shards, tmp_path):
    import shutil

    shards = tmp_path / "s"
    shutil.copytree(tiny_shards, shards)

    def drop_one(m):  # a consistent edit: 5 -> 4 samples everywhere; bytes and sha256 untouched
        ts = m["splits"]["train"]["dehaze"]
        ts["samples"], ts["items"], ts["datasets"] = 4, 4, {"tiny": 4}
        ts["shards"][0]["samples"] = ts["shards"][0]["items"] = 4

    _edit_manifest(shards, drop_one)
    load_manifest(shards)  # valid on its face
    (problem,) = verify_shard_set(ShardSet.open(shards))
    assert problem.startswith("dehaze/train-000000.tar: holds 5 samples whose keys differ from the manifest's 4")
    result = runner.invoke(app, ["shards", "verify", str(shards)])
    assert result.exit_code == 1 and "dehaze/train-000000.tar" in result.output


def test_plan_and_dry_run_show_variants_and_write_nothing(tmp_path):
    root = tmp_path / "data/Derain"
    from PIL import Image

    for i in (1, 2):
        for folder, name in (("rainy", f"rain-{i}.png"), ("gt", f"norain-{i}.png")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 40), (i * 40, 10, 10)).save(root / folder / name)
    (root / "Rain100H").mkdir()  # a folder the layout does not name
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "sources": [
        {"name": "rain", "task": "derain", "split": "train", "kind": "layout", "layout": "rain100l",
         "root": "${data_root}/Derain"}]}))
    result = runner.invoke(app, ["shards", "plan", str(recipe), "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "rain100l" in result.output and "PromptIR/MoCE-IR" in result.output
    assert "ignored folder Rain100H" in result.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["shards", "build", str(recipe), "--out", str(out), "--dry-run",
                                 "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 0 and not out.exists() and not list(tmp_path.glob(".out.*"))
    result = runner.invoke(app, ["shards", "plan", str(recipe)])
    assert result.exit_code == 2 and "data_root" in result.output and "ANYIR_DATA_ROOT" in result.output
    manifest = build_shards(validate_recipe({"name": "r", "sources": [
        {"name": "rain", "task": "derain", "split": "train", "kind": "layout", "layout": "rain100l",
         "root": str(root)}]}), out, progress=False)
    assert "PromptIR/MoCE-IR" in manifest.sources["rain"].variant
    assert any("ignored folder Rain100H" in n.reason for n in manifest.notes)
