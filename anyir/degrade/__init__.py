"""Seeded synthetic degradations: pure functions of (image, params, rng), plus typed specs.

Functions: :func:`add_gaussian_noise`, :func:`add_rain_streaks`, :func:`add_haze`,
:func:`motion_blur`, :func:`defocus_blur`, :func:`darken`. Specs (recipe side) in :mod:`.specs`.
"""

from anyir.degrade.blur import defocus_blur, motion_blur
from anyir.degrade.haze import add_haze
from anyir.degrade.lowlight import darken
from anyir.degrade.noise import add_gaussian_noise
from anyir.degrade.rain import add_rain_streaks
from anyir.degrade.seeding import rng_from_key, seed_from_key

__all__ = [
    "add_gaussian_noise", "add_haze", "add_rain_streaks", "darken", "defocus_blur", "motion_blur",
    "rng_from_key", "seed_from_key",
]
