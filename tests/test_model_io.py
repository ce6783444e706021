"""AnyIR weights on disk (safetensors + config metadata), the CLI, and torch.compile equivalence."""

from __future__ import annotations

import json
import os

import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from anyir.cli import model_cmd
from anyir.model import Ablation, AnyIRConfig, create_model
from anyir.model.io import load_model, read_metadata, save_model

torch.set_num_threads(1)


def test_config_dict_round_trip():
    cfg = create_model("pico", Ablation(split="half", abg=(0.5, 0.5, 0.0))).config
    data = json.loads(json.dumps(cfg.to_dict()))
    assert AnyIRConfig.from_dict(data) == cfg


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("pico", Ablation(lambda_mode="fixed", lambda_value=0.25)).eval()
    with torch.no_grad():  # move weights off init so the test could fail
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "model.safetensors"
    save_model(model, path, metadata={"recipe_name": "demo", "recipe_hash": "abc"})
    meta = read_metadata(path)
    assert meta["variant"] == "pico" and meta["recipe_name"] == "demo"
    loaded = load_model(path)
    assert loaded.config == model.config
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_save_rejects_non_string_metadata_and_load_rejects_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="metadata"):
        save_model(create_model("pico"), tmp_path / "m.safetensors", metadata={"steps": 3})
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="anyir_config"):
        load_model(foreign)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_metadata(tmp_path / "missing.safetensors")


def _old_default_file(path, seed: int = 0) -> dict:
    """A file as the first release wrote it: faithful frequency path in the stored config."""
    torch.manual_seed(seed)
    model = create_model("pico", frequency_path="faithful")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    config = {"variant": "pico", "dim": 8, "blocks": [1, 1, 1, 1], "heads": [1, 2, 4, 8], "refinement_blocks": 1,
              "ffn_factor": 2.0, "gated_expansion": 2.0, "bias": False, "up_kernel": 3, "frequency_path": "faithful",
              "ablation": {"split": "skip", "gated_da": True, "fusion": True, "lambda_mode": "learnable",
                           "lambda_value": 0.5, "abg": [0.25, 0.25, 0.5]}}
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"variant": "pico", "anyir_config": json.dumps(config), "anyir_format": "1"})
    return tensors


def test_files_saved_with_the_faithful_default_still_load_and_run_either_way(tmp_path):
    path = tmp_path / "old.safetensors"
    tensors = _old_default_file(path)
    as_stored = load_model(path)
    assert as_stored.config.frequency_path == "faithful"
    assert all(torch.equal(as_stored.state_dict()[k], v) for k, v in tensors.items())
    fast = load_model(path, frequency_path="fast")
    assert fast.config.frequency_path == "fast" and fast.kernels == "fast"
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        reference = as_stored.set_kernels("reference")(x)
        torch.testing.assert_close(fast(x), reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(as_stored.set_kernels("fast")(x), reference, atol=1e-5, rtol=1e-5)


def test_fast_default_file_round_trips_and_loads_faithful(tmp_path):
    torch.manual_seed(1)
    model = create_model("pico").eval()
    path = tmp_path / "new.safetensors"
    save_model(model, path)
    assert json.loads(read_metadata(path)["anyir_config"])["frequency_path"] == "fast"
    faithful = load_model(path, frequency_path="faithful")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(faithful(x), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="frequency_path"):
        load_model(path, frequency_path="fft")


def test_compile_gives_same_output():
    """Dynamo capture (fullgraph) + AOTAutograd. Inductor's C++ codegen takes minutes on this CPU,
    so it runs only with ANYIR_TEST_INDUCTOR=1."""
    backend = "inductor" if os.environ.get("ANYIR_TEST_INDUCTOR") == "1" else "aot_eager"
    torch.manual_seed(0)
    model, x = create_model("pico").eval(), torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model, backend=backend, fullgraph=True)(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def _cli() -> typer.Typer:
    app = typer.Typer()
    model_cmd.register(app)
    return app


def test_cli_info_json_and_list():
    runner = CliRunner()
    result = runner.invoke(_cli(), ["model", "info", "--variant", "pico", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["params"] == sum(p.numel() for p in create_model("pico").parameters())
    assert report["macs_224"] > 0 and report["fft_macs"] == 0  # default: the fast (FFT-free) frequency path
    faithful = runner.invoke(_cli(), ["model", "info", "--variant", "pico", "--json", "--frequency-path", "faithful"])
    assert faithful.exit_code == 0, faithful.output
    assert json.loads(faithful.output)["fft_macs"] > 0
    assert json.loads(faithful.output)["macs_224"] == report["macs_224"]
    assert set(report["breakdown"]) >= {"attention", "gated_da", "fusion", "ffn", "resampling"}
    listing = runner.invoke(_cli(), ["model", "list"])
    assert listing.exit_code == 0 and "NON-PAPER" in listing.output and "tiny" in listing.output


def test_cli_bad_variant_exits_2():
    result = CliRunner().invoke(_cli(), ["model", "info", "--variant", "huge"])
    assert result.exit_code == 2
    assert "huge" in result.output
