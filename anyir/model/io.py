"""Save and load AnyIR weights with safetensors; the config travels in the file's metadata."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from anyir.model.config import AnyIRConfig
from anyir.model.net import AnyIR

CONFIG_KEY = "anyir_config"
FORMAT_KEY = "anyir_format"
FORMAT_VERSION = "1"


def unwrap(model: nn.Module) -> AnyIR:
    """Strip torch.compile and DDP wrappers, returning the AnyIR inside."""
    for _ in range(3):
        model = getattr(model, "_orig_mod", model)
        model = getattr(model, "module", model)
    if not isinstance(model, AnyIR):
        raise TypeError(f"model is a {type(model).__name__}, expected an AnyIR (or a wrapper of one)")
    return model


def save_model(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write weights + config (+ string ``metadata``) to a .safetensors file, atomically."""
    net = unwrap(model)
    extra = dict(metadata or {})
    bad = {k: v for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise ValueError(f"metadata values must be str; got non-str entries {bad!r} for {path}")
    extra.setdefault("variant", net.config.variant)
    extra[CONFIG_KEY] = json.dumps(net.config.to_dict())
    extra[FORMAT_KEY] = FORMAT_VERSION
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=extra)
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata dict of a saved model (includes the JSON config under ``anyir_config``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; train one or pass the right path")
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(path: str | Path, device: str | torch.device = "cpu", frequency_path: str | None = None) -> AnyIR:
    """Rebuild the network from the stored config and load the weights (strict).

    ``frequency_path`` overrides the stored one (it is not a weight: files written when
    ``faithful`` was the default run either way); None keeps what the file says.
    """
    meta = read_metadata(path)
    if CONFIG_KEY not in meta:
        raise ValueError(f"{path} has no '{CONFIG_KEY}' metadata; it was not written by anyir.model.io")
    config = AnyIRConfig.from_dict(json.loads(meta[CONFIG_KEY]))
    if frequency_path is not None:
        config = replace(config, frequency_path=frequency_path)
    model = AnyIR(config)
    model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return model.to(device).eval()
