"""anyir.eval.figures on the tiny shard set: the grid's numbers are the evaluation's, the charts draw."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from anyir.eval.evaluate import evaluate
from anyir.eval.figures import (
    balance_figure,
    figure_png,
    gain_figure,
    grid_rows,
    pick_samples,
    resolve_recorded_path,
    restoration_figure,
    restoration_grid,
)
from anyir.model import create_model


@pytest.fixture(scope="module")
def pico():
    torch.manual_seed(0)
    return create_model("pico").eval()


def test_pick_samples_takes_one_per_result_column(tiny_shards):
    samples = pick_samples(tiny_shards)
    columns = [(s.task, s.dataset, s.meta.get("online_noise_sigma")) for s in samples]
    assert sorted(columns, key=str) == sorted([
        ("denoise", "tiny", 15.0), ("denoise", "tiny", 25.0), ("denoise", "tiny", 50.0), ("derain", "tiny", None),
        ("dehaze", "tiny", None), ("deblur", "tiny", None), ("lowlight", "tiny", None)], key=str)
    assert [s.task for s in pick_samples(tiny_shards, tasks=["derain"], per_task=2)] == ["derain", "derain"]
    with pytest.raises(ValueError, match="not in the 'test' split"):
        pick_samples(tiny_shards, tasks=["desnow"])


def test_grid_scores_equal_the_evaluation_per_image(tiny_shards, pico):
    rows = grid_rows(pico, tiny_shards)
    model_images = evaluate(pico, tiny_shards, progress=False).image_frame()
    input_images = evaluate(None, tiny_shards, progress=False).image_frame()
    assert len(rows) == 7
    for row in rows:
        for frame, scores in ((model_images, row.restored_scores), (input_images, row.input_scores)):
            hit = frame[(frame.key == row.key) & (frame.dataset == row.column)].set_index("metric")["value"]
            assert scores["psnr"] == pytest.approx(hit["psnr"], abs=1e-9)
            assert scores["ssim"] == pytest.approx(hit["ssim"], abs=1e-9)
        assert row.degraded.dtype == np.uint8 and row.degraded.shape == row.clean.shape == row.restored.shape


def test_restoration_grid_writes_one_row_per_column_with_scores_in_titles(tiny_shards, pico, tmp_path):
    out = restoration_grid(pico, tiny_shards, tmp_path / "sub" / "grid.png", title="pico")
    with Image.open(out) as image:
        width, height = image.size
    assert image.format == "PNG" and height > 2 * width  # 7 rows of 3 panels
    rows = grid_rows(pico, tiny_shards, tasks=["denoise"])
    fig = restoration_figure(rows)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 9
    assert f"{rows[0].input_scores['psnr']:.2f} dB" in titles[0]
    assert f"{rows[0].restored_scores['psnr']:.2f} dB" in titles[1]
    assert "denoise / tiny_s15" in fig.axes[0].get_ylabel()
    assert figure_png(restoration_figure(rows)) == figure_png(restoration_figure(rows))  # no timestamp inside
    with pytest.raises(ValueError, match="no test images"):
        restoration_figure([])


def test_gain_and_balance_figures_draw_several_runs():
    gains = pd.DataFrame({"name": ["a", "a", "b", "b"], "task": ["derain", "average"] * 2,
                          "dataset": ["demo", "demo"] * 2, "metric": ["psnr"] * 4,
                          "gain_over_input": [1.5, 0.5, -0.2, 0.1]})
    fig = gain_figure(gains, runs=["b", "a"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["derain\ndemo", "average\ndemo"]
    assert len(fig.axes[0].containers) == 2
    points = pd.DataFrame({"task": ["derain"] * 3 + ["dehaze"] * 3, "group": ["uniform", "uniform", "natural"] * 2,
                           "weight": [0.2, 0.2, 0.3, 0.2, 0.2, 0.1], "psnr": [30.0, 31.0, 32.0, 25.0, 26.0, 24.0]})
    fig = balance_figure(points)
    assert [ax.get_title() for ax in fig.axes] == ["derain", "dehaze"]
    Image.open(io.BytesIO(figure_png(fig))).verify()


def test_recorded_paths_resolve_absolute_or_from_the_project_folder(tmp_path, monkeypatch):
    db = tmp_path / "leaderboard" / "leaderboard.duckdb"
    (tmp_path / "shards" / "demo").mkdir(parents=True)
    db.parent.mkdir()
    monkeypatch.chdir(tmp_path / "leaderboard")
    assert resolve_recorded_path("shards/demo", db) == (tmp_path / "shards" / "demo").resolve()
    assert resolve_recorded_path(str(tmp_path / "shards" / "demo"), db) == tmp_path / "shards" / "demo"
    assert resolve_recorded_path("shards/gone", db) is None
    assert resolve_recorded_path(None, db) is None
