"""A shard set as a Hugging Face ``DatasetDict``: ``anyir shards to-hf SET OUT``.

``datasets.load_dataset("webdataset", ...)`` reads one task's tars but not a whole set, because
samples differ in their members (online-noise samples have no ``lq`` image) and in their metadata
(``degradation`` fields differ per task). The export gives every sample the same schema instead:

    key                 string    the sample key in the shard set
    task, split, dataset string
    gt                  Image     the clean image (PNG bytes: lossless)
    lq                  Image     the degraded image; None for online-noise samples
    online_noise_sigma  float64   the test/train noise sigma of online-noise samples, else None
    meta                string    the sample's whole metadata as JSON (degradation, crop, files, ...)

One split per shard-set split (``train``, ``test``), written with ``DatasetDict.save_to_disk`` so
``datasets.load_from_disk(OUT)`` reads it and anyir's ``hf`` source reads it back (docs/datasets.md).
Samples are read through the one shard reader (verified against the manifest) and decoded by
:func:`anyir.data.samples.iter_samples`, so the export holds what training and evaluation see,
whatever the shards' image format: images are re-encoded as PNG from the decoded arrays.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from anyir.data.codec import encode
from anyir.data.samples import Sample, iter_samples
from anyir.data.shardset import ShardSet, as_shard_set

if TYPE_CHECKING:  # datasets is slow to import
    import datasets

COLUMNS = ("key", "task", "split", "dataset", "gt", "lq", "online_noise_sigma", "meta")


def hf_features() -> datasets.Features:
    """The export's schema, the same for every sample of every task."""
    from datasets import Features, Image, Value

    return Features({"key": Value("string"), "task": Value("string"), "split": Value("string"),
                     "dataset": Value("string"), "gt": Image(), "lq": Image(),
                     "online_noise_sigma": Value("float64"), "meta": Value("string")})


def sample_row(sample: Sample, compress_level: int = 6) -> dict:
    """One row of the export: PNG bytes in the image columns, the metadata as sorted JSON."""
    sigma = sample.meta.get("online_noise_sigma")
    return {
        "key": sample.key, "task": sample.task, "split": sample.split, "dataset": sample.dataset,
        "gt": {"bytes": encode(sample.gt, "png", compress_level), "path": None},
        "lq": None if sample.lq is None else {"bytes": encode(sample.lq, "png", compress_level), "path": None},
        "online_noise_sigma": None if sigma is None else float(sigma),
        "meta": json.dumps(sample.meta, sort_keys=True),
    }


def _rows(root: str, url_prefix: str | None, split: str, compress_level: int) -> Iterator[dict]:
    # Module-level with plain arguments: datasets fingerprints the generator and its kwargs.
    for sample in iter_samples(ShardSet.open(root, url_prefix), split):
        yield sample_row(sample, compress_level)


def export_hf(shards: ShardSet | str | Path, out: str | Path, splits: Iterable[str] | None = None,
              overwrite: bool = False, compress_level: int = 6, url_prefix: str | None = None) -> dict[str, int]:
    """Write the shard set as a ``DatasetDict`` folder at ``out``; return the rows per split.

    ``splits`` defaults to every split in the manifest. The folder is written beside ``out`` and
    renamed into place when complete; an existing ``out`` is replaced only with ``overwrite``.
    """
    from datasets import Dataset, DatasetDict, NamedSplit
    from datasets.exceptions import DatasetGenerationError

    shard_set = as_shard_set(shards, url_prefix)
    chosen = sorted(shard_set.manifest.splits) if splits is None else list(splits)
    unknown = sorted(set(chosen) - set(shard_set.manifest.splits))
    if unknown:
        raise ValueError(f"splits: {unknown} not in {shard_set.root}; available: {sorted(shard_set.manifest.splits)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another OUT or pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.to-hf-", dir=out.parent))
    try:
        # The generator's arrow cache lives in the staging folder, not in ~/.cache, and goes with it.
        try:
            parts = {split: Dataset.from_generator(
                _rows, features=hf_features(), cache_dir=str(staging / "cache"), split=NamedSplit(split),
                gen_kwargs={"root": str(Path(shard_set.root).resolve()), "url_prefix": shard_set.url_prefix,
                            "split": split, "compress_level": compress_level}) for split in chosen}
        except DatasetGenerationError as exc:  # datasets wraps our one-line errors (ShardCorrupt, ...)
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise
        dataset = DatasetDict(parts)
        dataset.save_to_disk(str(staging / "dataset"))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(staging / "dataset", out)
        return {split: len(part) for split, part in parts.items()}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def readback_sources(out: str | Path, prefix: str = "hf") -> list[dict]:
    """Recipe sources (``kind: hf``) that rebuild an export's samples: one per split, task, dataset
    and online-noise sigma, selected with ``where``.

    Pairs read ``lq`` as stored; online-noise rows read ``gt`` only and get the noise back as an
    online ``noise`` degradation at their sigma. Sample keys come back as ``<source name>__<key>``
    (online noise: ``...__s<sigma>`` appended), the way every ``hf`` source with a ``key_column``
    names its samples.
    """
    from datasets import load_from_disk

    dataset = load_from_disk(str(out))
    sources = []
    for split in dataset:
        part = dataset[split].select_columns(["task", "dataset", "online_noise_sigma"])
        groups = dict.fromkeys(zip(part["task"], part["dataset"], part["online_noise_sigma"], strict=True))
        for task, name, sigma in groups:
            tag = "" if sigma is None else f"_s{sigma:g}".replace(".", "p")
            source = {"name": re.sub(r"[^A-Za-z0-9_-]+", "_", f"{prefix}_{task}_{name}_{split}{tag}"),
                      "task": task, "split": split,
                      "dataset": name, "kind": "hf", "path": str(Path(out).resolve()), "hf_split": split,
                      "gt_column": "gt", "key_column": "key",
                      "where": {"task": task, "dataset": name, "online_noise_sigma": sigma}}
            if sigma is None:
                source["lq_column"] = "lq"
            else:
                source.update(lq_column=None, degradation={"name": "noise", "sigmas": [sigma]})
            sources.append(source)
    return sources
