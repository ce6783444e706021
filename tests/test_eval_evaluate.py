"""evaluate() on the tiny shard set: columns, seeded test noise, identity baseline, tiling, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anyir.data.samples import iter_samples
from anyir.degrade.noise import add_gaussian_noise
from anyir.degrade.seeding import rng_from_key
from anyir.eval.evaluate import column_dataset, eval_pair, evaluate


@pytest.fixture(scope="module")
def input_report(tiny_shards):
    return evaluate(None, tiny_shards, progress=False)


def test_identity_report_has_one_column_per_task_and_sigma(input_report, tiny_shards):
    table = input_report.table()
    columns = set(zip(table["task"], table["dataset"], strict=True))
    assert {("denoise", "tiny_s15"), ("denoise", "tiny_s25"), ("denoise", "tiny_s50")} <= columns
    assert {("derain", "tiny"), ("dehaze", "tiny"), ("deblur", "tiny"), ("lowlight", "tiny")} <= columns
    assert ("average", input_report.recipe_name) in columns
    n_test = sum(1 for _ in iter_samples(tiny_shards, "test"))
    assert len(input_report.images) == n_test * 2  # psnr + ssim per image
    # The average is over the columns (each sigma once), as in the papers.
    per_column = [r.value for r in input_report.rows if r.metric == "psnr" and r.task != "average"]
    assert input_report.value("average", input_report.recipe_name, "psnr") == pytest.approx(np.mean(per_column))


def test_more_noise_scores_lower(input_report):
    s15, s50 = (input_report.value("denoise", f"tiny_s{s}", "psnr") for s in (15, 50))
    assert s15 > s50 + 5  # noise at sigma 50 costs ~10 dB more than at 15


def test_test_noise_is_seeded_by_key_and_identical_across_calls(tiny_shards, input_report):
    noisy = [s for s in iter_samples(tiny_shards, "test", tasks=["denoise"])]
    assert noisy and all(s.lq is None for s in noisy)
    first, again = eval_pair(noisy[0]), eval_pair(noisy[0])
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], first[1])  # noise was added
    assert not np.array_equal(first[0], eval_pair(noisy[1])[0])
    sigma = noisy[0].meta["online_noise_sigma"]
    expected = add_gaussian_noise(first[1], sigma, rng_from_key("test-noise", noisy[0].key), rounding="truncate")
    np.testing.assert_array_equal(first[0], expected)
    repeat = evaluate(None, tiny_shards, tasks=["denoise"], progress=False)
    for row in repeat.rows:
        if row.task == "denoise":
            assert row.value == input_report.value(row.task, row.dataset, row.metric)


def test_column_dataset_names_online_noise_sigma(tiny_shards):
    sample = next(iter_samples(tiny_shards, "test", tasks=["denoise"]))
    assert column_dataset(sample) == f"{sample.dataset}_s{sample.meta['online_noise_sigma']:g}"


def test_model_run_with_tiles_and_per_image_values(tiny_shards):
    from anyir.model import create_model

    torch.manual_seed(0)
    model = create_model("pico").train()
    whole = evaluate(model, tiny_shards, tasks=["derain", "lowlight"], max_images=1, progress=False)
    tiled = evaluate(model, tiny_shards, tasks=["derain", "lowlight"], max_images=1, tile=48, overlap=16,
                     progress=False)
    assert {r.n for r in whole.rows if r.task != "average"} == {1}
    assert len(whole.image_frame()) == 2 * 2
    for row in whole.rows:
        assert tiled.value(row.task, row.dataset, row.metric) == pytest.approx(row.value, abs=0.5 if row.metric == "psnr" else 0.02)
    assert whole.signature() != tiled.signature()
    assert model.training  # handed back in the mode it came in (evaluate may run inside training)


def test_unknown_task_names_the_available_ones(tiny_shards):
    with pytest.raises(ValueError, match="not in the 'test' split.*available"):
        evaluate(None, tiny_shards, tasks=["desnow"], progress=False)
