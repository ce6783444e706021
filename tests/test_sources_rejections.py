"""One rejection per bad file: the samples a file expands to (crops x online-noise sigmas) are
rejected one by one in the workers, then folded by ``dedupe_rejections``."""

from __future__ import annotations

import numpy as np
from PIL import Image

from anyir.data.images import ImageReadError
from anyir.data.recipe import validate_recipe
from anyir.data.sources.base import Rejection, dedupe_rejections, item_rejection
from anyir.data.sources.materialize import SampleError, materialize


def worker_rejections(items) -> list[Rejection]:
    """What the build's workers do with each item: make it, or reject it."""
    out = []
    for item in items:
        try:
            materialize(item, seed=0)
        except (ImageReadError, SampleError) as exc:
            out.append(item_rejection(item, str(exc)))
    return out


def test_three_corrupt_files_with_three_sigmas_give_three_rejections(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(folder / "good.png")
    for name in ("bad1.png", "bad2.png", "bad3.png"):
        (folder / name).write_bytes(b"not an image")
    recipe = validate_recipe({"name": "r", "sources": [
        {"name": "bsd", "task": "denoise", "split": "train", "kind": "synthetic", "images": {"folder": str(folder)},
         "degradation": {"name": "noise", "sigmas": [15, 25, 50]}}]})
    found = recipe.sources[0].scan(recipe.resolve)
    raw = worker_rejections(found.items)
    assert len(raw) == 9  # one per (file, sigma): what the manifest used to list
    merged = dedupe_rejections(raw)
    assert [r.file for r in merged] == ["bad1.png", "bad2.png", "bad3.png"]
    assert all("cannot decode image" in r.reason for r in merged)
    assert all(r.reason.endswith("(3 samples: sigmas 15/25/50)") for r in merged)
    assert merged[0].to_dict() == {"source": "bsd", "task": "denoise", "split": "train", "file": "bad1.png",
                                   "reason": merged[0].reason}


def test_crops_and_sigmas_are_named_and_distinct_reasons_stay_apart(tmp_path):
    base = dict(source="s", task="t", split="train", file="a.png")
    raw = [Rejection(**base, reason="broken", crop_index=c, sigma=s) for c in (0, 1) for s in (15.0, 50.0)]
    raw += [Rejection(**base, reason="size mismatch"), Rejection(**{**base, "file": "b.png"}, reason="broken", sigma=25.0)]
    merged = dedupe_rejections(raw)
    assert [(r.file, r.reason) for r in merged] == [
        ("a.png", "broken (4 samples: crops 0/1 x sigmas 15/50)"),
        ("a.png", "size mismatch"),
        ("b.png", "broken"),  # a single lost sample keeps its reason unchanged
    ]


def test_scan_rejections_without_sample_tags_pass_through_once():
    rejection = Rejection("s", "t", "train", "/data/Derain", "folder not found")
    assert dedupe_rejections([rejection]) == [rejection]
    assert dedupe_rejections([rejection, rejection])[0].reason == "folder not found (reported 2 times)"


def test_item_file_id_is_shared_by_crops_and_sigmas(tmp_path):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    for folder in (lq, gt):
        folder.mkdir()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "x.png")
    recipe = validate_recipe({"name": "r", "sources": [
        {"name": "p", "task": "derain", "split": "train", "kind": "paired", "lq_dir": str(lq), "gt_dir": str(gt),
         "crop": {"size": 8, "per_image": 3}}]})
    items = recipe.sources[0].scan(recipe.resolve).items
    assert len(items) == 3 and {i.file_id for i in items} == {"x.png, x.png"}
    assert {item_rejection(i, "r").crop_index for i in items} == {0, 1, 2}
