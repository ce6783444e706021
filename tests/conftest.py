"""Shared pytest setup: offline switches first, then fixtures."""

from __future__ import annotations

import os

# Set before any test imports albumentations / datasets / huggingface_hub.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
