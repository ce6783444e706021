"""MixtureStream on the tiny shard set: exact mixtures over ranks and workers, determinism,
resumption, weight changes, safe decoding, corrupt shards, remote-style URLs."""

from __future__ import annotations

import io
import pickle
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import reseal_manifest

from anyir.data.balance import epoch_counts
from anyir.data.loader import make_loader
from anyir.data.low_discrepancy import prefix_errors
from anyir.data.samples import iter_samples
from anyir.data.stream import MixtureStream, ShardSkippedWarning, join_slices


def stream(shards, weights="natural", **kw) -> MixtureStream:
    kw.setdefault("batch_size", 2)
    kw.setdefault("crop", 32)
    return MixtureStream(shards, weights, **kw)


def rank_batches(shards, weights, world_size: int, num_workers: int, **kw) -> dict[int, list[dict]]:
    """One epoch per rank, made the way DataLoader workers would (each worker's slice), merged by step."""
    out = {}
    for rank in range(world_size):
        s = stream(shards, weights, rank=rank, world_size=world_size, num_workers=num_workers, **kw)
        slices = [list(s.iter_worker(w, 0)) for w in range(s.loader_workers)]
        for part in slices:
            assert [st for st, _ in part] == list(range(s.steps_per_epoch))  # every worker, every step
        out[rank] = [join_slices([p for _, p in parts]) for parts in zip(*slices, strict=True)]
    return out


def train_keys(shards) -> Counter:
    return Counter((s.task, s.key) for s in iter_samples(shards, "train"))


@pytest.mark.parametrize("balance", ["natural", "uniform", "temperature:2",
                                     "denoise=3,derain=1,dehaze=1,deblur=1,lowlight=0"])
def test_exact_counts_single_process(tiny_shards, balance):
    s = stream(tiny_shards, balance, batch_size=3, samples_per_epoch=61)
    assert s.samples_per_epoch == 60 and s.steps_per_epoch == 20
    seen = Counter(t for b in s for t in b["task"])
    assert seen == Counter({t: n for t, n in epoch_counts(s.weights, 60).items() if n})
    assert s.epoch == 1 and s.step == 0


@pytest.mark.parametrize("balance", ["uniform", "denoise=5,derain=1,dehaze=1,deblur=2,lowlight=1"])
def test_exact_counts_two_ranks_two_workers(tiny_shards, balance):
    per_rank = rank_batches(tiny_shards, balance, world_size=2, num_workers=2, samples_per_epoch=48)
    assert len(per_rank[0]) == len(per_rank[1]) == 12
    seen = Counter(t for batches in per_rank.values() for b in batches for t in b["task"])
    weights = stream(tiny_shards, balance).weights
    assert seen == Counter({t: n for t, n in epoch_counts(weights, 48).items() if n})


def test_natural_epoch_reads_every_sample_exactly_once(tiny_shards):
    # natural weights x all 40 samples: the exact counts equal the available samples.
    per_rank = rank_batches(tiny_shards, "natural", world_size=2, num_workers=2, samples_per_epoch=40)
    seen = Counter((t, k) for batches in per_rank.values() for b in batches for t, k in zip(b["task"], b["key"], strict=False))
    assert seen == train_keys(tiny_shards)


def test_subsampled_task_has_no_duplicates_across_ranks(tiny_shards):
    weights = {"denoise": 1, "derain": 1}  # 10 of 12 samples each
    per_rank = rank_batches(tiny_shards, weights, world_size=2, num_workers=2, samples_per_epoch=20, batch_size=1)
    keys = [k for batches in per_rank.values() for b in batches for k in b["key"]]
    assert len(keys) == 20 and len(set(keys)) == 20


def test_repeated_task_is_cycled_evenly(tiny_shards):
    # lowlight has 4 samples in one shard; 12 slots = every sample exactly 3 times.
    per_rank = rank_batches(tiny_shards, {"lowlight": 1}, world_size=2, num_workers=2, samples_per_epoch=12)
    seen = Counter(k for batches in per_rank.values() for b in batches for k in b["key"])
    assert len(seen) == 4 and set(seen.values()) == {3}


@pytest.mark.parametrize("world_size,num_workers", [(3, 1), (4, 2)])
def test_every_rank_runs_the_same_steps_on_uneven_shards(tiny_shards, world_size, num_workers):
    # More consumers (up to 8) than most tasks have shards (1-2): nobody runs dry or hangs.
    per_rank = rank_batches(tiny_shards, "uniform", world_size, num_workers, samples_per_epoch=50)
    expected = 50 // (2 * world_size)
    assert all(len(batches) == expected for batches in per_rank.values())
    assert all(b["lq"].shape == (2, 3, 32, 32) for batches in per_rank.values() for b in batches)


def test_batches_are_float_pairs_with_noise_added_on_the_fly(tiny_shards):
    s = stream(tiny_shards, {"denoise": 1, "derain": 1}, batch_size=4, samples_per_epoch=16)
    for b in s:
        assert b["lq"].dtype == torch.float32 and b["gt"].shape == (4, 3, 32, 32)
        assert 0.0 <= float(b["lq"].min()) and float(b["lq"].max()) <= 1.0
        assert set(b) == {"lq", "gt", "task", "key"} and len(b["key"]) == 4
        for i, task in enumerate(b["task"]):
            residual = (b["lq"][i] - b["gt"][i]) * 255
            if task == "denoise":  # sigma 15, 25 or 50 (clipping shrinks it a little)
                assert 8 < float(residual.std()) < 60
            assert float(residual.abs().max()) > 0


def test_crops_larger_than_images_are_reflect_padded(tiny_shards):
    s = stream(tiny_shards, "uniform", crop=80, samples_per_epoch=4)  # train images are 48 px
    assert next(iter(s))["gt"].shape == (2, 3, 80, 80)


def test_same_seed_same_batches_other_seed_other_batches(tiny_shards):
    def first_epoch(seed):
        return list(stream(tiny_shards, "uniform", seed=seed, num_workers=2, samples_per_epoch=20))

    a, b, c = first_epoch(0), first_epoch(0), first_epoch(1)
    assert all(torch.equal(x["lq"], y["lq"]) and x["key"] == y["key"] for x, y in zip(a, b, strict=True))
    assert any(not torch.equal(x["lq"], y["lq"]) for x, y in zip(a, c, strict=True))


def test_epochs_differ(tiny_shards):
    s = stream(tiny_shards, "natural", samples_per_epoch=40)
    one, two = [k for b in s for k in b["key"]], [k for b in s for k in b["key"]]
    assert sorted(one) == sorted(two) and one != two


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x["key"] == y["key"] and x["task"] == y["task"]
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])


@pytest.mark.parametrize("stop_at", [3, 7])
def test_resume_mid_epoch_batch_for_batch(tiny_shards, stop_at):
    kw = dict(weights="uniform", num_workers=2, samples_per_epoch=24, shuffle_buffer=4, seed=7)
    full = stream(tiny_shards, **kw)
    full.set_weights("uniform")
    reference = list(full)
    full.set_weights({"derain": 1, "dehaze": 1})  # a change in the second epoch, at step 0 and step 5
    it = iter(full)
    reference += [next(it) for _ in range(5)]
    full.set_weights({"denoise": 2, "lowlight": 1})
    reference += list(it)

    first = stream(tiny_shards, **kw)
    it = iter(first)
    got = [next(it) for _ in range(stop_at)]
    resumed = stream(tiny_shards, **kw)
    resumed.load_state_dict(first.state_dict())
    got += list(resumed)
    resumed.set_weights({"derain": 1, "dehaze": 1})
    it = iter(resumed)
    got += [next(it) for _ in range(5)]
    state = resumed.state_dict()
    again = stream(tiny_shards, **kw)
    again.load_state_dict(state)
    again.set_weights({"denoise": 2, "lowlight": 1})
    got += list(again)
    assert_same(reference[stop_at:], got[stop_at:])
    assert again.samples_seen() == full.samples_seen()


def test_dataloader_workers_match_in_process_and_resume(tiny_shards):
    kw = dict(batch_size=2, crop=32, seed=2, samples_per_epoch=20, rank=0, world_size=1)
    reference = list(stream(tiny_shards, "uniform", num_workers=2, **{k: v for k, v in kw.items() if k != "crop"}))
    loader = make_loader(tiny_shards, "uniform", num_workers=2, **kw)
    it = iter(loader)
    got = [next(it) for _ in range(4)]
    state = loader.state_dict()
    resumed = make_loader(tiny_shards, "uniform", num_workers=2, **kw)
    resumed.load_state_dict(state)
    got += list(resumed)
    assert_same(reference, got)
    assert len(loader) == resumed.steps_per_epoch == 10


def test_each_dataloader_worker_keeps_its_own_mixture_within_one_sample(tiny_shards):
    # issue 13: per worker too. Three real worker processes make slices of 2, 1 and 1 of every
    # batch of 4; after every step each worker's own count of each task is within 1 of its share
    balance = {"denoise": 5, "derain": 1, "dehaze": 1, "deblur": 2, "lowlight": 1}
    kw = dict(batch_size=4, crop=32, seed=3, samples_per_epoch=120)
    loader = make_loader(tiny_shards, balance, num_workers=3, **kw)
    batches = list(loader)
    assert len(batches) == 30 and loader.stream.loader_workers == 3
    assert_same(list(stream(tiny_shards, balance, num_workers=3, **{k: v for k, v in kw.items() if k != "crop"})),
                batches)
    tasks = sorted(balance)
    w = np.array([balance[t] for t in tasks], dtype=float)
    counts = np.array([[[[part.count(t) for t in tasks]] for part in (b["task"][:2], b["task"][2:3], b["task"][3:])]
                       for b in batches]).transpose(0, 2, 1, 3)  # [steps, ranks=1, workers=3, tasks]
    total, rank, worker = prefix_errors(counts, w / w.sum())
    assert total < 1 and rank < 1 and worker < 1


def test_a_state_saved_before_worker_slices_fails_loudly_with_workers(tiny_shards):
    kw = dict(batch_size=2, samples_per_epoch=20)
    s = stream(tiny_shards, "uniform", num_workers=2, **kw)
    next(iter(s))
    state = s.state_dict()
    del state["config"]["layout"]  # what anyir saved before workers made slices of every batch
    with pytest.raises(ValueError, match="older anyir in which each of the 2 loader workers made whole batches"):
        stream(tiny_shards, "uniform", num_workers=2, **kw).load_state_dict(state)
    one = stream(tiny_shards, "uniform", num_workers=0, **kw)  # one worker: the plan is unchanged, so it resumes
    first = list(one)
    s0 = stream(tiny_shards, "uniform", num_workers=0, **kw)
    it = iter(s0)
    next(it)
    old = s0.state_dict()
    del old["config"]["layout"]
    again = stream(tiny_shards, "uniform", num_workers=0, **kw)
    again.load_state_dict(old)
    assert_same(first[1:], list(again))


def test_more_workers_than_samples_per_batch_run_as_many_as_there_are_samples(tiny_shards):
    loader = make_loader(tiny_shards, "uniform", num_workers=4, batch_size=2, crop=32, samples_per_epoch=20)
    assert loader.stream.loader_workers == 2
    assert len(list(loader)) == 10


def test_set_weights_takes_effect_next_step_and_samples_seen_counts(tiny_shards):
    s = stream(tiny_shards, "uniform", batch_size=2, samples_per_epoch=20)
    it = iter(s)
    before = [t for _ in range(4) for t in next(it)["task"]]
    s.set_weights({"dehaze": 1.0})
    after = [t for b in it for t in b["task"]]
    assert set(after) == {"dehaze"} and len(after) == 12
    seen = Counter(before) + Counter(after)
    assert s.samples_seen() == {t: seen.get(t, 0) for t in s.tasks}
    assert s.epoch == 1 and s.weights["dehaze"] == 1.0


def test_weight_change_continues_task_sequences_without_duplicates(tiny_shards):
    s = stream(tiny_shards, "uniform", batch_size=2, samples_per_epoch=20, num_workers=2)
    it = iter(s)
    keys = [k for _ in range(2) for k in next(it)["key"]]
    s.set_weights({"denoise": 1, "derain": 1})  # at most 4 + 8 of the 12 samples of each
    keys += [k for b in it for k in b["key"]]
    assert len(keys) == 20 and len(set(keys)) == 20


def test_bad_arguments_fail_with_names(tiny_shards):
    with pytest.raises(ValueError, match="rank=2"):
        stream(tiny_shards, rank=2, world_size=2)
    with pytest.raises(ValueError, match="unknown: \\['snow'\\]"):
        stream(tiny_shards, {"snow": 1.0})
    with pytest.raises(ValueError, match="samples_per_epoch=3"):
        stream(tiny_shards, samples_per_epoch=3, batch_size=4)
    s = stream(tiny_shards)
    with pytest.raises(ValueError, match="batch_size"):
        stream(tiny_shards, batch_size=4).load_state_dict(s.state_dict())


def _rewrite_tar(path: Path, extra: dict[str, bytes]) -> None:
    """Rewrite a tar, adding the ``extra`` members (suffix -> bytes) to every sample, before its json."""
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            key, _, ext = info.name.partition(".")
            if ext == "json":
                for suffix, payload in extra.items():
                    tar.addfile(_info(f"{key}.{suffix}", payload), io.BytesIO(payload))
            tar.addfile(info, io.BytesIO(data))


def _info(name: str, payload: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info


class _CreatesFile:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_malicious_members_are_never_decoded(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_CreatesFile(marker))
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_CreatesFile(probe)))
    assert probe.exists()  # the payload really runs when unpickled
    for tar in (shards / "dehaze").glob("train-*.tar"):
        _rewrite_tar(tar, {"pyd": payload, "pickle": payload, "pth": payload})
    reseal_manifest(shards)  # as if a build had written these members: the checks pass, the members stay unread
    s = stream(shards, {"dehaze": 1.0}, samples_per_epoch=10)
    keys = [k for b in s for k in b["key"]]
    assert len(keys) == 10 and s.skipped_shards == 0
    assert not marker.exists()


def test_truncated_shard_is_skipped_with_warning_and_counts_stay_exact(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    bad = shards / "denoise" / "train-000000.tar"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 3])
    s = stream(shards, "natural", samples_per_epoch=40, num_workers=2)
    with pytest.warns(ShardSkippedWarning, match="train-000000.tar"):
        batches = list(s)
    assert len(batches) == s.steps_per_epoch == 20
    tasks = Counter(t for b in batches for t in b["task"])
    assert tasks == Counter(epoch_counts(s.weights, 40))
    assert s.skipped_shards == 1 and s.skipped_shard_urls == [str(bad)]
    assert "bytes, the manifest says" in s.state_dict()["skipped_shards"][str(bad)]
    assert s.replaced_samples == 8  # the whole shard is skipped: none of its samples is used


def test_url_prefix_reads_tars_through_webdataset_urls(tiny_shards, tmp_path):
    manifest_only = tmp_path / "manifest_only"
    manifest_only.mkdir()
    shutil.copy(tiny_shards / "manifest.json", manifest_only)
    remote = stream(manifest_only, "uniform", url_prefix=f"pipe:cat {tiny_shards}/{{path}}", samples_per_epoch=10)
    local = stream(tiny_shards, "uniform", samples_per_epoch=10)
    assert_same(list(local), list(remote))


def test_several_shard_sets_merge_their_tasks(tiny_shards):
    s = stream([tiny_shards, tiny_shards], "natural")
    assert s.counts == {t: 2 * n for t, n in stream(tiny_shards).counts.items()}
    assert s.samples_per_epoch == 80


def test_undecodable_sample_is_replaced_by_a_spare_of_its_task(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    tar_path = shards / "deblur" / "train-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    broken_key = members[0][0].name.partition(".")[0]
    with tarfile.open(tar_path, "w") as tar:
        for info, data in members:
            data = b"not a png" if info.name == f"{broken_key}.gt.png" else data
            tar.addfile(_info(info.name, data), io.BytesIO(data))
    reseal_manifest(shards)  # the tar is intact, one image inside it is not
    s = stream(shards, {"deblur": 1.0}, samples_per_epoch=14)  # every deblur sample twice
    with pytest.warns(ShardSkippedWarning, match=broken_key):
        keys = [k for b in s for k in b["key"]]
    assert len(keys) == 14 and broken_key not in keys and s.skipped_shards == 0


def test_set_epoch_jumps_to_the_same_batches_as_playing_through(tiny_shards):
    played = stream(tiny_shards, "uniform", samples_per_epoch=10)
    for _ in range(2):
        list(played)
    jumped = stream(tiny_shards, "uniform", samples_per_epoch=10)
    jumped.set_epoch(2)
    assert_same(list(played), list(jumped))


def test_make_loader_reads_rank_and_world_size_from_torchrun_env(tiny_shards, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    loader = make_loader(tiny_shards, "uniform", batch_size=2, crop=32, samples_per_epoch=20)
    assert (loader.stream.rank, loader.stream.world_size, loader.steps_per_epoch) == (1, 2, 5)


def _with_foreign_shard(tiny_shards, tmp_path, target: str, source: Path) -> Path:
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    shutil.copy(source, shards / target)
    return shards


def test_a_shard_of_another_task_under_the_expected_name_is_never_trained_on(tiny_shards, tmp_path):
    # dehaze's tar served as lowlight's: without checks, dehaze samples would train as lowlight.
    shards = _with_foreign_shard(tiny_shards, tmp_path, "lowlight/train-000000.tar",
                                 tiny_shards / "dehaze/train-000000.tar")
    dehaze_keys = {s.key for s in iter_samples(tiny_shards, "train", tasks=["dehaze"])}
    s = stream(shards, {"lowlight": 1.0, "derain": 1.0}, samples_per_epoch=16)
    with pytest.warns(ShardSkippedWarning, match="lowlight/train-000000.tar"):
        with pytest.raises(RuntimeError, match="no readable sample left"):
            list(s)  # lowlight has no other shard: nothing to replace it with, and it says so
    s = stream(shards, {"derain": 1.0}, samples_per_epoch=16)
    assert not dehaze_keys & {k for b in s for k in b["key"]}


def test_a_stale_shard_of_the_same_task_from_another_build_is_skipped(tiny_shards, tmp_path):
    from conftest import tiny_recipe_dict

    from anyir.data.build import build_shards
    from anyir.data.recipe import validate_recipe

    other = build_shards(validate_recipe({**tiny_recipe_dict(), "seed": 7}), tmp_path / "other", progress=False)
    assert other.recipe_hash != ""  # a rebuild with another seed: same task, same names, other pixels
    shards = _with_foreign_shard(tiny_shards, tmp_path, "derain/train-000001.tar",
                                 tmp_path / "other/derain/train-000001.tar")
    s = stream(shards, {"derain": 1.0}, samples_per_epoch=12)
    with pytest.warns(ShardSkippedWarning, match="sha256 differs"):
        keys = [k for b in s for k in b["key"]]
    assert len(keys) == 12 and s.skipped_shard_urls == [str(shards / "derain/train-000001.tar")]
    good = {x.key for x in iter_samples(tiny_shards, "train", tasks=["derain"])}
    stale_first = {x.key for x in iter_samples(tmp_path / "other", "train", tasks=["derain"])}
    assert set(keys) <= good and good == stale_first  # same keys: only the hash tells them apart


def test_strict_shards_fails_instead_of_skipping(tiny_shards, tmp_path):
    from anyir.data.reader import ShardCorrupt

    shards = _with_foreign_shard(tiny_shards, tmp_path, "derain/train-000000.tar",
                                 tiny_shards / "deblur/train-000000.tar")
    s = stream(shards, {"derain": 1.0}, samples_per_epoch=12, strict_shards=True)
    with pytest.raises(ShardCorrupt, match="derain/train-000000.tar"):
        list(s)


def test_each_local_shard_is_hashed_once_per_run_not_per_worker_generation(tiny_shards):
    loader = make_loader(tiny_shards, "natural", batch_size=2, crop=32, samples_per_epoch=40, num_workers=2)
    list(loader)  # epoch 0 in two worker processes: they report the files they verified
    verified = dict(loader.stream.reader.verified)
    assert len(verified) == 7 and all(len(v) == 3 for v in verified.values())
    calls = []
    import anyir.data.reader as reader_module

    real = reader_module._hash_mapped
    reader_module._hash_mapped = lambda data: calls.append(1) or real(data)
    try:
        list(loader)  # epoch 1 (new workers, forked after the patch): nothing to hash again
        s = stream(tiny_shards, "natural", samples_per_epoch=40)
        s.reader.verified.update(verified)
        list(s)
    finally:
        reader_module._hash_mapped = real
    assert calls == []


# ---------------------------------------------------------------------------- the per-sample path


def _coords(h: int, w: int):
    """An image whose pixels name their position (row, col, row+col), so a crop shows where it came from."""
    import numpy as np

    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows, cols, (rows * 7 + cols) % 256], axis=-1).astype(np.uint8)


def _locate(crop, h: int, w: int):
    """(top, left, hflip, vflip) of a crop of _coords(h, w)."""
    rows, cols = crop[:, :, 0].astype(int), crop[:, :, 1].astype(int)
    vflip, hflip = rows[0, 0] > rows[-1, 0], cols[0, 0] > cols[0, -1]
    return int(rows.min()), int(cols.min()), bool(hflip), bool(vflip)


@pytest.mark.parametrize("engine", ["numpy", "albumentations"])
def test_paired_augment_takes_one_window_and_the_same_flips_for_both_images(engine):
    import numpy as np

    from anyir.data.augment import PairedAugment

    h, w, c = 60, 90, 32
    gt = _coords(h, w)
    lq = 255 - gt
    gt.flags.writeable = lq.flags.writeable = False  # shard views are read-only
    aug = PairedAugment(c, engine=engine)
    seen = set()
    for i in range(200):
        lq_crop, gt_crop = aug(gt, lq, None, 0, 0, "key", i)
        assert gt_crop.shape == lq_crop.shape == (c, c, 3) and gt_crop.flags.c_contiguous and gt_crop.flags.writeable
        np.testing.assert_array_equal(lq_crop, 255 - gt_crop)  # same window, same flips
        top, left, hflip, vflip = _locate(gt_crop, h, w)
        window = gt[top:top + c, left:left + c]
        window = window[::-1] if vflip else window
        np.testing.assert_array_equal(gt_crop, window[:, ::-1] if hflip else window)
        seen.add((top, left, hflip, vflip))
        again = aug(gt, lq, None, 0, 0, "key", i)
        assert (again[1] == gt_crop).all()  # the same seed parts give the same crop and flips
    tops, lefts = {s[0] for s in seen}, {s[1] for s in seen}
    assert {(s[2], s[3]) for s in seen} == {(False, False), (False, True), (True, False), (True, True)}
    assert min(tops) <= 2 and max(tops) >= h - c - 2 and min(lefts) <= 2 and max(lefts) >= w - c - 2


def test_numpy_engine_pads_small_images_by_reflection_like_opencv():
    import cv2
    import numpy as np

    from anyir.data.augment import PairedAugment, reflect_pad

    small = np.random.default_rng(0).integers(0, 256, (20, 27, 3), dtype=np.uint8)
    expected = cv2.copyMakeBorder(small, 6, 6, 2, 3, cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(reflect_pad(small, 32), expected)
    lq, gt = PairedAugment(32, flips=False)(small, small, None, 1)
    np.testing.assert_array_equal(gt, expected) and np.testing.assert_array_equal(lq, expected)


def test_online_noise_is_added_to_the_gt_crop_and_seeded():
    import numpy as np

    from anyir.data.augment import PairedAugment

    gt = np.full((50, 50, 3), 128, np.uint8)
    aug = PairedAugment(16)
    lq, crop = aug(gt, None, 25.0, 0, 1, "k", 3)
    assert (crop == 128).all() and 15 < float(np.std(lq.astype(float))) < 35
    assert (aug(gt, None, 25.0, 0, 1, "k", 3)[0] == lq).all() and not (aug(gt, None, 25.0, 0, 1, "k", 4)[0] == lq).all()
    with pytest.raises(ValueError, match="online noise sigma"):
        aug(gt, None, None, 0)
