"""Recipe schema: a YAML file naming sources (mapped to tasks and splits), caps, repeat factors,
degradations, the default balance, shard size, encoding and seed.

    name: my_mix                      # [A-Za-z0-9_-]
    seed: 0                           # seeds crops, degradations and caps (with each sample key)
    shard_size: 256                   # source samples per tar (with patches: each with all its patches)
    encoding: {format: npy, test_format: png, patch: null}   # train members raw .npy, test PNG
    default_balance: natural          # natural | uniform | temperature:T | promptir | task=w,...
    sources:                          # one entry per (dataset, task, split)
      - name: rain100l_train          # unique; prefixes sample keys
        task: derain                  # tasks group shards: <task>/<split>-NNNNNN.tar
        split: train                  # train | test
        dataset: rain100l             # id in metadata and results (default: the name)
        kind: layout                  # layout | paired | synthetic | hf (see anyir.data.sources)
        layout: rain100l              # bsd400_wed clean_test rain100l reside_ots sots_outdoor gopro lol cdd11 csd uieb
        root: ${data_root}/data/Train/Derain
        repeat: 120                   # scales the natural balance; never duplicates samples
        max_samples: null             # cap: a fixed key-seeded subset
        crop: null                    # {size, per_image, mode: random|center}: fixed crops per image
        degradation: null             # for clean-only inputs: {name: noise|rain|haze|blur|lowlight|compose, ...}
        optional: false               # true: the build goes on when this source finds nothing

A source that finds no inputs (wrong root, empty folder) fails the build before any image is
encoded, naming the source and the reason (with a "did you mean" for a mistyped or misplaced
folder); mark it ``optional: true`` for a dataset you may not have downloaded. ``optional`` never
changes a sample, so it is not part of the recipe hash. A layout source reads only the folders its
layout names; any other folder under its root is listed as a note ("ignored folder"), and the
variant that matched is recorded per source. Folder layouts, pairing rules and where each root must
point: docs/datasets.md.

Top-level keys starting with ``x-`` are ignored (a place for YAML anchors). Paths may use
``${data_root}``, filled from ``--data-root`` or the ``ANYIR_DATA_ROOT`` environment variable;
relative paths are relative to the recipe file. The recipe hash covers the recipe's content (with
``${data_root}`` unexpanded), so the same recipe hashes the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from anyir import resources
from anyir.data.sources import Source

RECIPE_DIR = resources.recipe_dir()  # data_recipes/ (package data when installed from a wheel)
DATA_ROOT_ENV = "ANYIR_DATA_ROOT"


class RecipeError(ValueError):
    """A recipe could not be loaded or is invalid; the message names the file, the key and the fix."""


ImageFormat = Literal["png", "npy"]


class PatchSpec(BaseModel):
    """Train images stored as overlapping square patches cut at build time (see anyir.data.patches).

    Every training crop of up to ``size - stride + 1`` pixels that lies inside an image lies inside
    at least one of its patches. Counts and balances stay in source images (one visit per source
    image per epoch, each visit a random patch of it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    size: int = Field(ge=16, description="patch side in pixels")
    stride: int = Field(ge=1, description="step between patch origins; <= size")

    @model_validator(mode="after")
    def _stride_fits(self) -> PatchSpec:
        if self.stride > self.size:
            raise ValueError(f"patch stride {self.stride} > size {self.size} would leave gaps; use stride <= size")
        return self


class Encoding(BaseModel):
    """How images are stored in shards (numbers: docs/benchmarks.md).

    ``format`` is the train split's member format: ``npy`` (raw, decoding costs nothing, the shipped
    recipes' choice) or ``png`` (the schema default, so recipes written before ``npy`` existed build
    the same bytes). ``test_format``: the test split's, always whole images, PNG by default
    (evaluation decodes each image once). ``compress_level``: PNG's zlib level. ``patch``: cut train
    images into overlapping patches (``null``: whole images).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: ImageFormat = "png"
    test_format: ImageFormat = "png"
    compress_level: int = Field(default=1, ge=0, le=9)
    patch: PatchSpec | None = None

    @model_serializer(mode="wrap")
    def _without_unused_defaults(self, handler):
        # Fields added with npy/patches are left out at their defaults, so a recipe that does not
        # use them dumps (and hashes) exactly as before they existed.
        data = handler(self)
        if self.test_format == "png":
            data.pop("test_format", None)
        if self.patch is None:
            data.pop("patch", None)
        return data

    def image_format(self, split: str) -> str:
        """The member format of ``split`` (``train`` or ``test``)."""
        return self.test_format if split == "test" else self.format

    def patch_for(self, split: str) -> PatchSpec | None:
        """The patch cut of ``split``: only the train split is ever cut (evaluation uses whole images)."""
        return self.patch if split == "train" else None


class Recipe(BaseModel):
    """A validated recipe. Build it with :func:`load_recipe` (or ``Recipe.model_validate`` in tests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    seed: int = 0
    shard_size: int = Field(default=256, gt=0, description="samples per shard")
    encoding: Encoding = Encoding()
    default_balance: str = "natural"
    sources: list[Source] = Field(min_length=1)
    _path: Path | None = PrivateAttr(default=None)
    _data_root: Path | None = PrivateAttr(default=None)

    @field_validator("default_balance")
    @classmethod
    def _valid_balance(cls, value: str) -> str:
        from anyir.data.balance import parse_balance

        parse_balance(value)
        return value

    @model_validator(mode="after")
    def _unique_source_names(self) -> Recipe:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: names must be unique, repeated: {dupes}")
        return self

    @property
    def path(self) -> Path | None:
        """The recipe file this was loaded from (None when validated from a dict)."""
        return self._path

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the recipe (paths unexpanded)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def task_splits(self) -> list[tuple[str, str]]:
        """The (task, split) pairs the recipe declares, sorted."""
        return sorted({(s.task, s.split) for s in self.sources})

    def resolve(self, raw: str) -> Path:
        """Expand ``${data_root}`` and make relative paths relative to the recipe file."""
        if "${data_root}" in raw:
            root = self._data_root or (Path(os.environ[DATA_ROOT_ENV]) if os.environ.get(DATA_ROOT_ENV) else None)
            if root is None:
                raise RecipeError(f"{self._path or self.name}: path {raw!r} uses ${{data_root}} but no data root is set; "
                                  f"pass --data-root DIR or set {DATA_ROOT_ENV}=DIR")
            raw = raw.replace("${data_root}", str(root))
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute() and self._path is not None:
            path = self._path.parent / path
        return path


def available_recipes() -> list[str]:
    """Names of the recipes shipped in ``data_recipes/``."""
    return resources.shipped_recipes()


def find_recipe(path_or_name: str | Path) -> Path:
    """A recipe file path from a path or a shipped recipe name (``demo`` -> data_recipes/demo.yaml)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = resources.recipe_path(str(path_or_name))
    if shipped is not None:
        return shipped
    raise RecipeError(f"recipe {str(path_or_name)!r}: no such file and no shipped recipe of that name; "
                      f"shipped recipes: {', '.join(available_recipes())}")


def load_recipe(path_or_name: str | Path, data_root: Path | None = None) -> Recipe:
    """Load and validate a recipe file or shipped recipe name. Raises RecipeError naming file and key."""
    path = find_recipe(path_or_name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping with 'name' and 'sources', got {type(raw).__name__}")
    # Top-level "x-..." keys hold YAML anchors shared by sources (the docker-compose convention).
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    recipe = validate_recipe(raw, path)
    recipe._path = path.resolve()
    recipe._data_root = Path(data_root) if data_root else None
    return recipe


def validate_recipe(raw: dict, origin: Path | str = "<recipe>") -> Recipe:
    """Validate a recipe mapping; errors list each bad key as a dotted path with the value received."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            got = repr(err.get("input"))
            lines.append(f"  {loc}: {err['msg']} (got {got[:80]})")
        raise RecipeError(f"{origin}: invalid recipe\n" + "\n".join(lines)) from None
