"""Atomic checkpoints: weights in safetensors, everything else in a weights-only ``torch.save`` file.

Layout::

    RUN_DIR/checkpoints/step-000100/model.safetensors   weights + model config (anyir.model.io)
    RUN_DIR/checkpoints/step-000100/state.pt            optimizer, scheduler, step, per-rank RNG
                                                        and loader state, counters (plain types)
    RUN_DIR/checkpoints/latest                          name of the newest complete checkpoint

A checkpoint is written into a temporary folder and renamed into place, then ``latest`` is replaced
the same way, so a crash mid-write leaves the previous checkpoint intact and ``latest`` valid.
``state.pt`` holds only tensors, numbers, strings, lists, tuples and dicts: it loads with
``torch.load(weights_only=True)``, which never unpickles code.
"""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyir.model.io import load_model, save_model

LATEST = "latest"
STATE_FILE = "state.pt"
WEIGHTS_FILE = "model.safetensors"


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint taken after ``step`` optimizer steps."""
    return f"step-{step:07d}"


def save_checkpoint(
    ckpt_root: Path, step: int, model: torch.nn.Module, state: dict[str, Any],
    metadata: dict[str, str], keep: int,
) -> Path:
    """Write model + state for ``step`` atomically, point ``latest`` at it, prune to ``keep`` newest."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / checkpoint_name(step)
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, tmp / WEIGHTS_FILE, metadata=metadata)
        _save_state(to_plain(state), tmp / STATE_FILE)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint only takes space (e.g. disk full)
        raise
    if final.exists():  # a re-run over the same step: move the old one aside before replacing
        old = ckpt_root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        shutil.rmtree(old)
    os.replace(tmp, final)
    _write_atomic(ckpt_root / LATEST, final.name)
    _prune(ckpt_root, keep)
    return final


def _save_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` into memory, then one plain write: a full disk raises OSError(ENOSPC) naming the
    file, where torch's own writer reports only "unexpected pos ..."."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def is_disk_full(err: BaseException) -> bool:
    """True for "no space left" / "quota exceeded", however the writer reported it (safetensors raises
    its own error type with the OS message inside)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None when there is none."""
    pointer = ckpt_root / LATEST
    if not pointer.is_file():
        return None
    path = ckpt_root / pointer.read_text().strip()
    return path if (path / STATE_FILE).is_file() and (path / WEIGHTS_FILE).is_file() else None


def load_checkpoint(path: Path, model: torch.nn.Module) -> dict[str, Any]:
    """Copy the checkpoint's weights into ``model`` (unwrapped) and return its state dict."""
    saved = load_model(path / WEIGHTS_FILE)
    model.load_state_dict(saved.state_dict(), strict=True)
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """This process's torch / CUDA / numpy / python RNG state, in weights-only-loadable types."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])


def to_plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays (e.g. in a loader state) to types ``weights_only`` loading accepts."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _write_atomic(path: Path, text: str) -> None:
    """Write a small text file via temp + rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _prune(ckpt_root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints."""
    done = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
