"""benchmarks/model_speed.py: the PromptIR loader says what is missing; ratio rows add up.

Nothing here times anything: speed is printed by the script, never asserted by a test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "model_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("model_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_promptir_skip_reasons(bench, tmp_path):
    assert bench.load_promptir(None) == (None, "no --promptir DIR given")
    model, why = bench.load_promptir(str(tmp_path))
    assert model is None and "net/model.py not found" in why and "--promptir" in why


def test_promptir_loads_the_checkouts_net_model(bench, tmp_path, monkeypatch):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "model.py").write_text(
        "import torch\n"
        "class PromptIR(torch.nn.Module):\n"
        "    def __init__(self, decoder=False):\n"
        "        super().__init__()\n"
        "        self.decoder = decoder\n"
        "        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x)\n"
    )
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None if name == "einops" else True)
    model, why = bench.load_promptir(str(tmp_path))
    assert model is None and "einops" in why
    monkeypatch.undo()
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: object())
    model, why = bench.load_promptir(str(tmp_path))
    assert why == "ok" and model.decoder is True  # PromptIR(decoder=True), the network PromptIR trains


def test_ratio_row_from_interleaved_rounds(bench):
    times = {"a": {"wall": 6.0, "cpu": 12.0, "walls": [6.0, 5.0, 7.0]},
             "b": {"wall": 1.5, "cpu": 2.0, "walls": [1.0, 2.0, 1.4]}}
    row = bench._ratio_row("infer", times, ("a", "b"))
    assert row["ratio"] == 4.0 and row["cpu_ratio"] == 6.0
    assert row["ratio_per_round"] == [6.0, 2.5, 5.0] and row["median_round_ratio"] == 5.0
    assert row["a_ms"] == 6000 and row["b_cpu_ms"] == 2000


def test_settings_build_the_right_paths(bench):
    assert bench.build("pico", "default").kernels == "fast"
    assert bench.build("pico", "default").config.frequency_path == "fast"
    assert bench.build("pico", "faithful").config.frequency_path == "faithful"
    reference = bench.build("pico", "reference")
    assert reference.kernels == "reference" and reference.config.frequency_path == "faithful"
