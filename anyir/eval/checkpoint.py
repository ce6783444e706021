"""Find and load the weights behind ``--ckpt``: a run directory or a ``.safetensors`` file."""

from __future__ import annotations

from pathlib import Path

from torch import nn

MODEL_FILE = "model.safetensors"


def resolve_checkpoint(path: str | Path) -> Path:
    """Return the safetensors file for a run directory or a file path; raise naming the fix."""
    path = Path(path)
    if path.is_dir():
        weights = path / MODEL_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"--ckpt {path}: run directory has no {MODEL_FILE} "
                                    f"(training not finished?); pass a run dir with final weights "
                                    f"or a .safetensors file")
        return weights
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt {path}: no such file or directory")
    if path.suffix != ".safetensors":
        raise ValueError(f"--ckpt {path}: expected a run directory or a .safetensors file")
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> nn.Module:
    """Load an AnyIR model (config from the file's metadata) in eval mode."""
    from anyir.model.io import load_model

    model = load_model(resolve_checkpoint(path), device=device)
    return model.eval()
