"""Typed configuration of the AnyIR network: every default in one place.

``Ablation`` holds the switches of the paper's ablation studies (Tables 7, 8 and 10);
``AnyIRConfig`` holds the network's shape. Both are frozen dataclasses; invalid values raise
``ValueError`` naming the field, the value received and the accepted values.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("skip", "half")
LAMBDA_MODES = ("learnable", "spatial", "frequency", "fixed")
FREQUENCY_PATHS = ("faithful", "fast")


def _fail(name: str, value: object, fix: str) -> None:
    raise ValueError(f"{name}={value!r} is invalid: {fix}")


@dataclass(frozen=True)
class Ablation:
    """Switches for the paper's ablations. The defaults are the full AnyIR block (Table 7 row e).

    split: ``skip`` interleaves channels between the branches (eq. 6), ``half`` takes contiguous halves.
    gated_da: False replaces GatedDA by a second attention, so attention covers all channels.
    fusion: False concatenates the two branches instead of Algorithm 2 (W_fuse and eq. 9 stay).
    lambda_mode: Table 10 — ``learnable`` (init ``lambda_value``), ``spatial`` (lambda = 1),
        ``frequency`` (lambda = 0), ``fixed`` (lambda = ``lambda_value``).
    abg: (alpha, beta, gamma) fractions of the GatedDA hidden width (Table 8).
    """

    split: str = "skip"
    gated_da: bool = True
    fusion: bool = True
    lambda_mode: str = "learnable"
    lambda_value: float = 0.5
    abg: tuple[float, float, float] = (0.25, 0.25, 0.5)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            _fail("split", self.split, f"use one of {SPLITS}")
        for name in ("gated_da", "fusion"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, getattr(self, name), "use true or false")
        if self.lambda_mode not in LAMBDA_MODES:
            _fail("lambda_mode", self.lambda_mode, f"use one of {LAMBDA_MODES}")
        if not isinstance(self.lambda_value, (int, float)) or not math.isfinite(self.lambda_value):
            _fail("lambda_value", self.lambda_value, "use a finite number, e.g. 0.5")
        abg = tuple(self.abg)
        if len(abg) != 3 or any(not isinstance(r, (int, float)) or r < 0 or r > 1 for r in abg):
            _fail("abg", self.abg, "use three fractions in [0, 1], e.g. (0.25, 0.25, 0.5)")
        if abs(sum(abg) - 1.0) > 1e-6 or abg[0] + abg[1] == 0:
            _fail("abg", self.abg, "fractions must sum to 1 and alpha + beta must be > 0")
        object.__setattr__(self, "abg", tuple(float(r) for r in abg))
        object.__setattr__(self, "lambda_value", float(self.lambda_value))


TABLE7_ROWS: dict[str, Ablation] = {
    "a": Ablation(split="half", gated_da=False, fusion=False),
    "b": Ablation(split="skip", gated_da=False, fusion=False),
    "c": Ablation(split="half", gated_da=True, fusion=False),
    "d": Ablation(split="skip", gated_da=True, fusion=False),
    "e": Ablation(),
}
TABLE10_ROWS: dict[str, Ablation] = {
    "spatial-only": Ablation(lambda_mode="spatial"),
    "frequency-only": Ablation(lambda_mode="frequency"),
    "fixed-0.5": Ablation(lambda_mode="fixed", lambda_value=0.5),
    "learnable": Ablation(lambda_mode="learnable"),
}
# Table 8 was run without Algorithm 2 ("without Alg. 2"), hence fusion=False.
TABLE8_ROWS: dict[str, Ablation] = {
    "0,1/2,1/2": Ablation(fusion=False, abg=(0.0, 0.5, 0.5)),
    "1/2,0,1/2": Ablation(fusion=False, abg=(0.5, 0.0, 0.5)),
    "1/2,1/2,0": Ablation(fusion=False, abg=(0.5, 0.5, 0.0)),
    "1/4,1/4,1/2": Ablation(fusion=False, abg=(0.25, 0.25, 0.5)),
}


@dataclass(frozen=True)
class AnyIRConfig:
    """Shape of an AnyIR network. Defaults are AnyIR-Tiny (Table 11).

    dim: embedding width C; level i has width C * 2**i (decoder level 1 and refinement: 2C).
    blocks: DAB blocks per level, encoder levels 1-3 and latent (decoders reuse levels 1-3).
    heads: attention heads per level.
    refinement_blocks: DAB blocks after decoder level 1.
    ffn_factor: GDFN expansion factor; gated_expansion: GatedDA hidden = gated_expansion * (C/2).
    bias: bias terms on convolutions (Restormer convention: none).
    up_kernel: kernel of the convolution before each PixelShuffle (Restormer: 3).
    frequency_path: ``fast`` (default) computes Algorithm 2's frequency branch as the sum it equals
        (irfft2(rfft2(a) + rfft2(g)) = a + g, the FFT being linear); ``faithful`` runs the
        rfft2/irfft2 as written. Not a weight: a checkpoint runs either way.
    """

    variant: str = "custom"
    dim: int = 28
    blocks: tuple[int, int, int, int] = (3, 5, 5, 7)
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    refinement_blocks: int = 4
    ffn_factor: float = 2.0
    gated_expansion: float = 2.0
    bias: bool = False
    up_kernel: int = 3
    frequency_path: str = "fast"
    ablation: Ablation = field(default_factory=Ablation)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "heads", tuple(self.heads))
        if not isinstance(self.dim, int) or self.dim < 2 or self.dim % 2:
            _fail("dim", self.dim, "use an even integer >= 2 (channels are split in two halves)")
        for name in ("blocks", "heads"):
            value = getattr(self, name)
            if len(value) != 4 or any(not isinstance(v, int) or v < 1 for v in value):
                _fail(name, value, "use four positive integers, e.g. (3, 5, 5, 7)")
        for level, heads in enumerate(self.heads):
            if (self.dim * 2**level // 2) % heads:
                _fail("heads", self.heads, f"level {level + 1} attention width must divide by its heads")
        if not isinstance(self.refinement_blocks, int) or self.refinement_blocks < 0:
            _fail("refinement_blocks", self.refinement_blocks, "use an integer >= 0")
        if self.ffn_factor <= 0 or self.gated_expansion <= 0:
            _fail("ffn_factor/gated_expansion", (self.ffn_factor, self.gated_expansion), "use > 0")
        if self.up_kernel not in (1, 3):
            _fail("up_kernel", self.up_kernel, "use 1 or 3")
        if self.frequency_path not in FREQUENCY_PATHS:
            _fail("frequency_path", self.frequency_path, f"use one of {FREQUENCY_PATHS}")
        if isinstance(self.ablation, dict):
            object.__setattr__(self, "ablation", Ablation(**self.ablation))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnyIRConfig:
        """Inverse of ``to_dict``; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AnyIRConfig keys {unknown}; known keys: {sorted(known)}")
        data = dict(data)
        if "ablation" in data and isinstance(data["ablation"], dict):
            ab_known = {f.name for f in dataclasses.fields(Ablation)}
            ab_unknown = sorted(set(data["ablation"]) - ab_known)
            if ab_unknown:
                raise ValueError(f"unknown Ablation keys {ab_unknown}; known keys: {sorted(ab_known)}")
            data["ablation"] = Ablation(**data["ablation"])
        return cls(**data)


ABLATION_TABLES: dict[str, dict[str, Ablation]] = {
    "table7": TABLE7_ROWS,
    "table8": TABLE8_ROWS,
    "table10": TABLE10_ROWS,
}


def ablation_preset(name: str) -> Ablation:
    """The ablation of a paper table row, named ``table7:a``, ``table10:spatial-only``, ``table8:1/2,0,1/2``."""
    table, _, row = name.partition(":")
    rows = ABLATION_TABLES.get(table)
    if rows is None or row not in rows:
        known = [f"{t}:{r}" for t, rs in ABLATION_TABLES.items() for r in rs]
        raise ValueError(f"ablation={name!r} is unknown; use one of {known}")
    return rows[row]
