"""Seeds derived from sample keys, so results never depend on file-system order."""

from __future__ import annotations

import hashlib

import numpy as np


def seed_from_key(*parts: object) -> int:
    """A 63-bit seed from any sequence of parts (key, recipe seed, epoch, ...).

    sha256 of the parts joined by '|': stable across processes, platforms and Python
    versions (unlike ``hash()``), so two machines degrade the same sample identically.
    """
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def rng_from_key(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded by :func:`seed_from_key`."""
    return np.random.default_rng(seed_from_key(*parts))
