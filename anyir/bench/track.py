"""A benchmark track: everything fixed except the data (``data_recipes/tracks/<id>.yaml``).

A track fixes the model, the budget in samples seen, the training settings, the evaluation (which
test split, which result columns make the score, the protocol), the number of seeds, the
significance level, which data may be used (``pool``: the track's recipe, only the balance and the
per-source repeat factors free; ``open``: any recipe whose training images pass the leak audit
against the track's test images) and the baseline submission. See docs/tracks.md.

A file may name a training ``preset`` (``demo``: :data:`anyir.pipeline.DEMO`); its values fill the
training settings and the budget the file leaves out, so the demo track follows the demo's own
settings instead of copying them. The loaded :class:`Track` holds the resolved values, and
:meth:`Track.content_hash` hashes them together with the content hashes of the recipes it names:
editing the file, the preset or a recipe gives a new hash, and results under an old hash are never
ranked with the new ones.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

TRACKS_FOLDER = "tracks"
SCORE_METRIC = "psnr"  # the score; SSIM is reported beside it


class TrackError(ValueError):
    """A track file is invalid or unknown; the message names the file, the key and the fix."""


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    return value


Float = Annotated[float, BeforeValidator(_no_bool)]  # YAML reads 2e-4 as a string: floats parse numeric strings
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
_STRICT = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(BaseModel):
    """The network: a variant of ``anyir model list`` and optional ablation switches."""

    model_config = _STRICT
    variant: str
    ablation: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> ModelSpec:
        from anyir.model import Ablation, variant_config

        try:
            variant_config(self.variant, Ablation(**self.ablation) if self.ablation else None)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{err}; see `anyir model list`") from None
        return self


class TrainSettings(BaseModel):
    """Optimisation settings (the trainer's: Adam, linear warm-up then cosine, L1 + FFT-L1 loss). Every
    value is stated (by the file or its preset): a track is a protocol, not a set of defaults."""

    model_config = _STRICT
    batch_size: PositiveInt = Field(description="global batch")
    crop: PositiveInt
    lr: Annotated[float, BeforeValidator(_no_bool), Field(gt=0)]
    betas: tuple[Float, Float]
    weight_decay: Annotated[float, BeforeValidator(_no_bool), Field(ge=0)]
    warmup_steps: NonNegInt
    min_lr: Annotated[float, BeforeValidator(_no_bool), Field(ge=0)]
    fft_weight: Annotated[float, BeforeValidator(_no_bool), Field(ge=0)]
    input_error_power: Annotated[float, BeforeValidator(_no_bool), Field(ge=0)] = Field(
        0.0, description="per-sample loss weight (0.1 / (input error + 0.02)) ** this; 0 = the paper's loss")
    grad_clip: Annotated[float, BeforeValidator(_no_bool), Field(gt=0)] | None
    precision: Literal["auto", "bf16", "fp32"]
    balance_every: PositiveInt = Field(description="steps between updates of an adaptive balance")
    optimizer: Literal["adam"] = "adam"  # the only ones the trainer has; stated so a reader sees them
    schedule: Literal["warmup-cosine"] = "warmup-cosine"
    loss: Literal["l1+fft-l1"] = "l1+fft-l1"


class Budget(BaseModel):
    """What a run may consume, in samples seen; steps = ceil(samples / batch) (a run sees at least the budget)."""

    model_config = _STRICT
    samples: PositiveInt


class DataRule(BaseModel):
    """Which data a submission may train on."""

    model_config = _STRICT
    rule: Literal["pool", "open"]
    recipe: str = Field(description="pool: the only recipe; open: the reference recipe (the baseline's data)")
    audit_threshold: NonNegInt | None = Field(None, description="open: leak-audit bits (None: the method's default)")


class Evaluation(BaseModel):
    """What is scored: the test split of ``recipe``; the score is the mean PSNR over ``columns``."""

    model_config = _STRICT
    recipe: str
    columns: list[str] | Literal["all"] = Field(description="task/dataset result columns, or 'all' (every "
                                                "column of the test split, the average row excluded)")
    protocol: str = Field("promptir", description="metric protocol (anyir.eval.metrics.PROTOCOL)")
    tile: PositiveInt | None = None

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            bad = [c for c in value if c.count("/") != 1 or not all(c.split("/"))]
            if bad or not value or len(set(value)) != len(value):
                raise ValueError(f"columns must be unique 'task/dataset' names, e.g. denoise/bsd68_s15; got {value}")
        return value

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        from anyir.eval.metrics import PROTOCOL

        if value != PROTOCOL:
            raise ValueError(f"protocol {value!r}: this anyir scores with {PROTOCOL!r}")
        return value


class Submission(BaseModel):
    """A submission's data choices: balance spec, per-source repeat overrides and (open track) a recipe."""

    model_config = _STRICT
    balance: str = "uniform"
    repeats: dict[str, Float] = Field(default_factory=dict)
    recipe: str | None = None

    @field_validator("balance")
    @classmethod
    def _balance(cls, value: str) -> str:
        from anyir.data.balance import parse_balance

        return str(parse_balance(value))

    @field_validator("repeats")
    @classmethod
    def _repeats(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"repeat factors must be finite and > 0, got {bad}")
        return dict(sorted(value.items()))


class Track(BaseModel):
    """A loaded, resolved track (the values after the preset was applied)."""

    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: PositiveInt
    description: str
    scale: str = Field(description="demo | small | paper | a name of your own")
    preset: str | None = Field(None, description="the training preset the settings came from (informational)")
    model: ModelSpec
    budget: Budget
    train: TrainSettings
    data: DataRule
    eval: Evaluation
    seeds: Annotated[int, Field(strict=True, ge=2)] = Field(3, description="seeds per submission behind a claim")
    level: Annotated[float, BeforeValidator(_no_bool), Field(gt=0, lt=1)] = 0.95
    baseline: Submission = Submission()

    @property
    def steps(self) -> int:
        """Optimizer steps: the budget over the global batch, rounded up."""
        return math.ceil(self.budget.samples / self.train.batch_size)

    @property
    def samples_seen(self) -> int:
        """What a run of this track actually sees: ``steps x batch`` (>= the budget)."""
        return self.steps * self.train.batch_size

    def content(self) -> dict[str, Any]:
        """The canonical content: the resolved track plus the content hashes of the recipes it names."""
        return {"track": self.model_dump(mode="json"),
                "recipes": {"data": recipe_hash(self.data.recipe), "eval": recipe_hash(self.eval.recipe)}}

    def content_hash(self) -> str:
        """16 hex digits over :meth:`content` (stored with every run of the track)."""
        from anyir.leaderboard.records import stable_hash

        return stable_hash(self.content())

    def train_overrides(self) -> dict[str, Any]:
        """The TrainConfig fields this track fixes."""
        t = self.train
        return {"variant": self.model.variant, "ablation": dict(self.model.ablation), "steps": self.steps,
                "batch_size": t.batch_size, "crop": t.crop, "lr": t.lr, "betas": t.betas,
                "weight_decay": t.weight_decay, "warmup_steps": t.warmup_steps, "min_lr": t.min_lr,
                "fft_weight": t.fft_weight, "input_error_power": t.input_error_power, "grad_clip": t.grad_clip,
                "precision": t.precision, "balance_every": t.balance_every}


def recipe_hash(name: str) -> str:
    """The content hash of a recipe (a shipped name or a file); TrackError when it cannot be loaded."""
    from anyir.data.recipe import RecipeError, load_recipe

    try:
        return load_recipe(name).content_hash()
    except RecipeError as err:
        raise TrackError(f"track recipe {name!r}: {err}") from None


# ------------------------------------------------------------------------------ presets


def preset_values(name: str) -> dict[str, Any]:
    """A training preset of :mod:`anyir.pipeline` as track fields (model, train, budget)."""
    from anyir.pipeline import PRESETS

    if name not in PRESETS:
        raise TrackError(f"preset {name!r}: unknown; known presets: {', '.join(PRESETS)}")
    cfg = PRESETS[name].config(Path("."))  # a TrainConfig: the preset plus every trainer default
    return {
        "model": {"variant": cfg.variant, "ablation": dict(cfg.ablation)},
        "budget": {"samples": cfg.steps * cfg.batch_size},
        "train": {"batch_size": cfg.batch_size, "crop": cfg.crop, "lr": cfg.lr, "betas": list(cfg.betas),
                  "weight_decay": cfg.weight_decay, "warmup_steps": cfg.warmup_steps, "min_lr": cfg.min_lr,
                  "fft_weight": cfg.fft_weight, "input_error_power": cfg.input_error_power,
                  "grad_clip": cfg.grad_clip, "precision": cfg.precision,
                  "balance_every": cfg.balance_every},
    }


def _apply_preset(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill the sections a file leaves out (key by key) from its ``preset``."""
    name = raw.get("preset")
    if name is None:
        return raw
    out = dict(raw)
    for section, values in preset_values(str(name)).items():
        given = out.get(section)
        if given is None:
            out[section] = values
        elif isinstance(given, dict):
            out[section] = {**values, **given}
    return out


# ------------------------------------------------------------------------------ loading


def find_track(name_or_path: str | Path) -> Path:
    """A track file: an existing path, else a shipped track name (``demo`` -> data_recipes/tracks/demo.yaml)."""
    from anyir import resources

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise TrackError(f"track file {path} does not exist; pass a track file or one of {', '.join(track_names())}")
        return path
    shipped = resources.recipe_path(f"{TRACKS_FOLDER}/{name_or_path}")
    if shipped is None:
        raise TrackError(f"track {str(name_or_path)!r}: unknown; shipped tracks: {', '.join(track_names())} "
                         "(or pass a track file)")
    return shipped


def track_names() -> list[str]:
    """Names of the shipped tracks, sorted."""
    from anyir import resources

    return [n.split("/", 1)[1] for n in resources.shipped_recipes(TRACKS_FOLDER)]


def load_track(name_or_path: str | Path) -> Track:
    """Read, resolve (preset) and validate a track. TrackError names the file, the key and the value."""
    path = find_track(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TrackError(f"track file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise TrackError(f"track file {path}: a track is a YAML mapping (id, version, data, eval, ...), "
                         f"got {type(raw).__name__}")
    raw = _relative_recipes({k: v for k, v in raw.items() if not str(k).startswith("x-")}, path.parent)
    try:
        track = Track.model_validate(_apply_preset(raw))
    except ValidationError as err:
        raise TrackError(f"track file {path}: {_describe(err)}") from None
    if track.data.rule == "pool" and track.baseline.recipe is not None:
        raise TrackError(f"track file {path}: baseline.recipe: a pool track's submissions all use data.recipe; "
                         "drop baseline.recipe")
    for key, name in (("data.recipe", track.data.recipe), ("eval.recipe", track.eval.recipe)):
        try:
            recipe_hash(name)
        except TrackError as err:
            raise TrackError(f"track file {path}: {key}: {err}") from None
    return track


def _relative_recipes(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Recipe files named relative to the track file are found there (shipped names stay names)."""
    out = dict(raw)
    for section in ("data", "eval"):
        values = out.get(section)
        if isinstance(values, dict) and isinstance(values.get("recipe"), str):
            name = values["recipe"]
            if name.endswith((".yaml", ".yml")) and not Path(name).is_absolute() and (folder / name).is_file():
                out[section] = {**values, "recipe": str((folder / name).resolve())}
    return out


def _describe(err: ValidationError) -> str:
    """One clause per problem: key, message, value received."""
    parts = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"]) or "(track)"
        if problem["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r} (check the spelling; see docs/tracks.md)")
        elif problem["type"] == "missing":
            parts.append(f"{key}: missing")
        else:
            parts.append(f"{key}: {problem['msg']} (got {problem.get('input')!r})")
    return "; ".join(parts)
