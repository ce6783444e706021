"""Restore the user's own image files (any size, any PIL mode) and save PNGs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from anyir.data.images import ImageReadError, encode_png, read_image
from anyir.eval.evaluate import restore_array


def output_path(source: Path, out_dir: Path, taken: set[Path]) -> Path:
    """``out_dir/<stem>.png``; ``<stem>_1.png``, ... when two inputs share a stem."""
    candidate, index = out_dir / f"{source.stem}.png", 1
    while candidate in taken:
        candidate, index = out_dir / f"{source.stem}_{index}.png", index + 1
    taken.add(candidate)
    return candidate


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float HxWx3 in [0, 1] -> uint8, rounded."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def restore_files(model: nn.Module, paths: Iterable[str | Path], out_dir: str | Path, tile: int | None = 512,
                  overlap: int = 32, device: str = "cpu", progress: bool = True,
                  on_error: Callable[[str], None] = print) -> tuple[list[Path], list[str]]:
    """Restore each file into ``out_dir``; return (written paths, error messages).

    An unreadable file is reported through ``on_error`` (the message names it) and skipped,
    so one bad file does not stop the rest.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    errors: list[str] = []
    taken: set[Path] = set()
    paths = [Path(p) for p in paths]
    for path in tqdm(paths, desc="restore", unit="img", disable=not progress):
        try:
            image, _ = read_image(path)
        except ImageReadError as exc:
            errors.append(str(exc))
            on_error(str(exc))
            continue
        restored = to_uint8(restore_array(model, image, tile=tile, overlap=overlap, device=device))
        target = output_path(path, out_dir, taken)
        target.write_bytes(encode_png(restored))
        written.append(target)
    return written, errors
