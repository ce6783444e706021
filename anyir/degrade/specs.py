"""Typed degradation specs, as written in recipes. Each samples its parameters from a seeded rng,
applies the pure function, and returns every parameter it used (for the sample's metadata).

A parameter given as ``[lo, hi]`` is drawn uniformly per sample; a single number is fixed.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from anyir.degrade.blur import defocus_blur, motion_blur
from anyir.degrade.haze import add_haze
from anyir.degrade.lowlight import darken
from anyir.degrade.noise import add_gaussian_noise
from anyir.degrade.rain import add_rain_streaks

Range = float | tuple[float, float]
Params = dict[str, object]


def draw(value: Range, rng: np.random.Generator) -> float:
    """A fixed value, or a uniform draw from ``[lo, hi]``; rounded so metadata stays readable."""
    if isinstance(value, (int, float)):
        return float(value)
    lo, hi = value
    return round(float(rng.uniform(lo, hi)), 4)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _ordered_ranges(cls, value: object, info) -> object:
        if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
            raise ValueError(f"{info.field_name}: range [{value[0]}, {value[1]}] has lo > hi; write [lo, hi]")
        return value


class NoiseSpec(_Spec):
    """Gaussian noise. ``online: true`` (the default) stores the clean image and lets readers add
    the noise (one sample per sigma); inside a composition it is baked in with a drawn sigma."""

    name: Literal["noise"] = "noise"
    sigmas: list[float] = Field(default_factory=lambda: [15.0, 25.0, 50.0], min_length=1)
    online: bool = True

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
        """Degrade ``clean`` (uint8 HxWx3) with ``rng``; return the image and every parameter used."""
        sigma = float(self.sigmas[int(rng.integers(len(self.sigmas)))])
        return add_gaussian_noise(clean, sigma, rng), {"name": self.name, "sigma": sigma}


class RainSpec(_Spec):
    """Rain streaks (see :func:`anyir.degrade.rain.add_rain_streaks`)."""

    name: Literal["rain"] = "rain"
    density: Range = (0.004, 0.012)
    length: Range = (8.0, 20.0)
    angle: Range = (-20.0, 20.0)
    intensity: Range = (0.5, 0.85)

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
        """Degrade ``clean`` (uint8 HxWx3) with ``rng``; return the image and every parameter used."""
        p = {"density": draw(self.density, rng), "length": int(round(draw(self.length, rng))),
             "angle": draw(self.angle, rng), "intensity": draw(self.intensity, rng)}
        return add_rain_streaks(clean, rng, **p), {"name": self.name, **p}


class HazeSpec(_Spec):
    """Atmospheric-scattering haze with a smooth depth proxy (see :mod:`anyir.degrade.haze`)."""

    name: Literal["haze"] = "haze"
    beta: Range = (0.8, 1.8)
    airlight: Range = (0.7, 0.95)

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
        """Degrade ``clean`` (uint8 HxWx3) with ``rng``; return the image and every parameter used."""
        p = {"beta": draw(self.beta, rng), "airlight": draw(self.airlight, rng)}
        return add_haze(clean, rng, **p), {"name": self.name, **p}


class BlurSpec(_Spec):
    """Motion or defocus blur; ``kind: either`` picks one per sample."""

    name: Literal["blur"] = "blur"
    kind: Literal["motion", "defocus", "either"] = "either"
    length: Range = (5.0, 11.0)
    angle: Range = (0.0, 180.0)
    radius: Range = (1.5, 3.0)

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
        """Degrade ``clean`` (uint8 HxWx3) with ``rng``; return the image and every parameter used."""
        kind = self.kind if self.kind != "either" else ("motion", "defocus")[int(rng.integers(2))]
        if kind == "motion":
            p: Params = {"kind": kind, "length": int(round(draw(self.length, rng))), "angle": draw(self.angle, rng)}
            return motion_blur(clean, p["length"], p["angle"]), {"name": self.name, **p}
        p = {"kind": kind, "radius": draw(self.radius, rng)}
        return defocus_blur(clean, p["radius"]), {"name": self.name, **p}


class LowLightSpec(_Spec):
    """Low light: gamma, scale, mild noise (see :func:`anyir.degrade.lowlight.darken`)."""

    name: Literal["lowlight"] = "lowlight"
    gamma: Range = (1.4, 2.2)
    scale: Range = (0.25, 0.5)
    noise_sigma: Range = (1.0, 4.0)

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
        """Degrade ``clean`` (uint8 HxWx3) with ``rng``; return the image and every parameter used."""
        p = {"gamma": draw(self.gamma, rng), "scale": draw(self.scale, rng), "noise_sigma": draw(self.noise_sigma, rng)}
        return darken(clean, rng, **p), {"name": self.name, **p}


SingleSpec = Annotated[NoiseSpec | RainSpec | HazeSpec | BlurSpec | LowLightSpec, Field(discriminator="name")]


class ComposeSpec(_Spec):
    """Apply several degradations in order (e.g. low light then haze then rain)."""

    name: Literal["compose"] = "compose"
    steps: list[SingleSpec] = Field(min_length=1)

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
        """Degrade ``clean`` (uint8 HxWx3) with ``rng``; return the image and every parameter used."""
        image, used = clean, []
        for step in self.steps:
            image, params = step.apply(image, rng)
            used.append(params)
        return image, {"name": self.name, "steps": used}


DegradationSpec = Annotated[
    NoiseSpec | RainSpec | HazeSpec | BlurSpec | LowLightSpec | ComposeSpec, Field(discriminator="name")
]
