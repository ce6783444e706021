"""anyir: data-centric benchmark and dataset pipeline for all-in-one image restoration."""

__version__ = "0.1.0"
