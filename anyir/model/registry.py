"""Named AnyIR variants: plain functions on a size ladder, listed in an index (timm style).

``tiny`` and ``small`` are the paper's (Table 11). ``nano`` and ``pico`` are NOT in the paper:
``nano`` is a demo size that trains on a CPU in minutes, ``pico`` exists for tests (keeps
every component at the smallest widths).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from anyir.model.config import Ablation, AnyIRConfig
from anyir.model.net import AnyIR


@dataclass(frozen=True)
class VariantInfo:
    """One registry entry: the config builder and whether the paper defines it."""

    name: str
    build: Callable[[Ablation], AnyIRConfig]
    paper: bool
    description: str


_VARIANTS: dict[str, VariantInfo] = {}


def register_variant(name: str, paper: bool, description: str):
    """Decorator adding a config function to the index under ``name``."""

    def add(fn: Callable[[Ablation], AnyIRConfig]) -> Callable[[Ablation], AnyIRConfig]:
        _VARIANTS[name] = VariantInfo(name, fn, paper, description)
        return fn

    return add


@register_variant("tiny", paper=True, description="AnyIR-Tiny, Table 11: dim 28, [3,5,5,7]")
def anyir_tiny(ablation: Ablation) -> AnyIRConfig:
    """AnyIR-Tiny (paper Table 11: 5.74 M params, 26 G FLOPs)."""
    return AnyIRConfig(variant="tiny", dim=28, blocks=(3, 5, 5, 7), refinement_blocks=4, ablation=ablation)


@register_variant("small", paper=True, description="AnyIR-Small, Table 11: dim 32, [4,6,6,8]")
def anyir_small(ablation: Ablation) -> AnyIRConfig:
    """AnyIR-Small (paper Table 11: 8.51 M params, 39 G FLOPs)."""
    return AnyIRConfig(variant="small", dim=32, blocks=(4, 6, 6, 8), refinement_blocks=4, ablation=ablation)


@register_variant("nano", paper=False, description="NON-PAPER demo size: dim 12, [1,1,1,2], trains on CPU")
def anyir_nano(ablation: Ablation) -> AnyIRConfig:
    """Demo variant (not in the paper): small enough to train on a CPU in minutes."""
    return AnyIRConfig(variant="nano", dim=12, blocks=(1, 1, 1, 2), refinement_blocks=1, ablation=ablation)


@register_variant("pico", paper=False, description="NON-PAPER test size: dim 8, [1,1,1,1], every component")
def anyir_pico(ablation: Ablation) -> AnyIRConfig:
    """Test variant (not in the paper): every component at the smallest widths."""
    return AnyIRConfig(variant="pico", dim=8, blocks=(1, 1, 1, 1), refinement_blocks=1, ablation=ablation)


def list_variants() -> list[str]:
    """Registered variant names, in registration order (paper variants first, then by size)."""
    return list(_VARIANTS)


def variant_info(name: str) -> VariantInfo:
    """Registry entry for ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in _VARIANTS:
        raise ValueError(f"variant={name!r} is unknown; use one of {list_variants()}")
    return _VARIANTS[name]


def variant_config(name: str, ablation: Ablation | None = None, frequency_path: str = "fast") -> AnyIRConfig:
    """The config of a named variant, with optional ablation switches and frequency path.

    ``frequency_path="faithful"`` runs Algorithm 2's FFTs as written; ``fast`` (default) computes
    the identical sum (see ``fusion``). Same weights, same function.
    """
    return replace(variant_info(name).build(ablation or Ablation()), frequency_path=frequency_path)


def create_model(
    variant: str, ablation: Ablation | None = None, frequency_path: str = "fast", kernels: str = "fast"
) -> AnyIR:
    """Build a freshly initialised AnyIR of a named variant.

    ``kernels="reference"`` selects the plain implementation (for checks; same function, slower).
    """
    return AnyIR(variant_config(variant, ablation, frequency_path), kernels=kernels)
