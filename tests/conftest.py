"""Shared pytest setup: offline switches first, then fixtures."""

from __future__ import annotations

import os

# Set before any test imports albumentations / datasets / huggingface_hub.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TINY_TRAIN = ["astronaut", "brick", "camera", "coffee", "grass", "moon", "rocket"]
TINY_TEST = ["chelsea", "coins"]
# (task, degradation, train images, crops per image): uneven counts on purpose.
TINY_TASKS = [
    ("denoise", {"name": "noise", "sigmas": [15, 25, 50]}, 4, 1),  # 12 samples -> 2 shards of 8
    ("derain", {"name": "rain"}, 6, 2),  # 12 -> 2 shards
    ("dehaze", {"name": "haze"}, 5, 1),  # 5 -> 1 shard
    ("deblur", {"name": "blur"}, 7, 1),  # 7 -> 1 shard
    ("lowlight", {"name": "lowlight"}, 4, 1),  # 4 -> 1 shard
]


def tiny_recipe_dict(name: str = "tiny", shard_size: int = 8) -> dict:
    """A recipe of five synthetic tasks on 48 px train crops / 64 px test crops of skimage samples."""
    sources = []
    for task, degradation, n_train, crops in TINY_TASKS:
        sources.append({"name": f"tiny_{task}_train", "task": task, "split": "train", "dataset": "tiny",
                        "kind": "synthetic", "images": {"skimage": TINY_TRAIN[:n_train]},
                        "crop": {"size": 48, "per_image": crops}, "degradation": degradation})
        sources.append({"name": f"tiny_{task}_test", "task": task, "split": "test", "dataset": "tiny",
                        "kind": "synthetic", "images": {"skimage": TINY_TEST},
                        "crop": {"size": 64, "mode": "center"}, "degradation": degradation})
    return {"name": name, "seed": 0, "shard_size": shard_size, "default_balance": "uniform", "sources": sources}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Single-threaded torch in every test: on a 2-core box, thread oversubscription (pytest + loader
    workers + torchrun ranks) costs seconds per call; the trainer sets its own count when it runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """A built shard set: denoise (online sigmas 15/25/50), derain, dehaze, deblur, lowlight; train
    and test splits; uneven counts; denoise and derain have 2 train shards, the others one."""
    from anyir.data.build import build_shards
    from anyir.data.recipe import validate_recipe

    out = tmp_path_factory.mktemp("tiny_shards")
    build_shards(validate_recipe(tiny_recipe_dict()), out, workers=1, progress=False)
    return out


def reseal_manifest(shard_dir: Path) -> None:
    """Rewrite the manifest's bytes / sha256 / sample count / keys digest of every shard from the
    tars on disk: simulates a build that really produced tampered tars (so the reader's checks
    pass and the test reaches what it wants to test, e.g. that unknown members are never decoded)."""
    import hashlib
    import json
    import tarfile

    from anyir.data.reader import keys_digest, split_member_name

    path = shard_dir / "manifest.json"
    raw = json.loads(path.read_text())
    for tasks in raw["splits"].values():
        for ts in tasks.values():
            for shard in ts["shards"]:
                data = (shard_dir / shard["path"]).read_bytes()
                with tarfile.open(shard_dir / shard["path"]) as tar:
                    keys = list(dict.fromkeys(split_member_name(m.name)[0] for m in tar if m.isfile()))
                shard.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), samples=len(keys),
                             keys_sha256=keys_digest(keys))
            ts["samples"] = sum(s["samples"] for s in ts["shards"])
    path.write_text(json.dumps(raw, sort_keys=True, indent=1) + "\n")
