"""`anyir restore`: any size and mode, unreadable files named and skipped, exit 1 if any failed."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from anyir.cli import app

runner = CliRunner()


def test_restore_handles_modes_and_reports_bad_files(tmp_path):
    from anyir.model import create_model
    from anyir.model.io import save_model

    torch.manual_seed(0)
    ckpt = tmp_path / "pico.safetensors"
    save_model(create_model("pico"), ckpt)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), mode="L").save(tmp_path / "gray.jpg")
    Image.fromarray(rng.integers(0, 256, (24, 30, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "alpha.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    inputs = [tmp_path / n for n in ("odd.png", "broken.png", "gray.jpg", "alpha.png", "missing.png")]
    out = tmp_path / "out"
    result = runner.invoke(app, ["restore", *map(str, inputs), "--ckpt", str(ckpt), "--out", str(out),
                                 "--tile", "32", "--overlap", "8"])
    assert result.exit_code == 1, result.output
    assert "broken.png" in result.output and "missing.png" in result.output
    assert "restored 3 image(s)" in result.output
    sizes = {p.name: Image.open(p).size for p in out.iterdir()}
    assert sizes == {"odd.png": (53, 37), "gray.png": (40, 40), "alpha.png": (30, 24)}
    assert all(Image.open(p).mode == "RGB" for p in out.iterdir())


def test_restore_bad_checkpoint_exits_2(tmp_path):
    result = runner.invoke(app, ["restore", str(tmp_path / "x.png"), "--ckpt", str(tmp_path / "none.safetensors"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "none.safetensors" in result.output
