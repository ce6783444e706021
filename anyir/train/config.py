"""`TrainConfig`: every training option and its default, in one place.

Defaults follow the paper's protocol (AnyIR appendix A.2): global batch 32, 128 px crops, Adam with
lr 2e-4 and betas (0.9, 0.999), cosine decay, L1 plus a Fourier-domain L1 term. The FFT weight 0.1 is
the value MoCE-IR's author confirmed (eduardzamfir/MoCE-IR#5; see docs/training.md).

A YAML file states only overrides (``load_config``); unknown keys and wrong types fail loudly. YAML 1.1
reads ``2e-4`` as a *string*, so float fields parse numeric strings while ints and bools stay strict.
"""

from __future__ import annotations

import dataclasses
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


def _no_bool(value: Any) -> Any:
    """Reject YAML booleans where a number is expected (``lr: yes`` would otherwise become 1.0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    return value


Float = Annotated[float, BeforeValidator(_no_bool)]
PositiveFloat = Annotated[float, BeforeValidator(_no_bool), Field(gt=0)]
NonNegFloat = Annotated[float, BeforeValidator(_no_bool), Field(ge=0)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
StrictBool = Annotated[bool, Field(strict=True)]


class TrainConfig(BaseModel):
    """Resolved options of one training run (saved as ``RUN_DIR/config.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # data
    shards: Path = Field(description="shard set folder (holds manifest.json)")
    balance: str | None = Field(None, description="balance spec (parse_balance); None = the manifest's default")
    samples_per_epoch: PositiveInt | None = Field(None, description="None = the stream's default (all samples x repeats)")
    shards_url_prefix: str | None = Field(
        None, description="where the tar files live when not beside manifest.json: a URL prefix, '{path}' "
        "is replaced by the manifest's shard path, e.g. 'pipe:aws s3 cp s3://bucket/aio3/{path} -'")
    strict_shards: StrictBool = Field(False, description="fail the run on a shard that does not match its manifest "
                                      "entry, instead of skipping it (skips are recorded in the summary)")
    crop: PositiveInt = Field(128, description="square training crop in pixels (paper: 128)")
    num_workers: NonNegInt = Field(
        2, description="DataLoader worker processes per rank; each makes a slice of every batch, so at most "
                       "the per-rank batch size of them run")
    # model
    variant: str = Field("tiny", description="model variant (anyir.model.list_variants())")
    ablation: dict[str, Any] = Field(default_factory=dict, description="anyir.model Ablation fields to override")
    channels_last: StrictBool = False
    compile: StrictBool = Field(False, description="wrap the model in torch.compile")
    # optimisation
    batch_size: PositiveInt = Field(32, description="GLOBAL batch; each rank gets batch_size / world_size")
    steps: PositiveInt | None = Field(None, description="optimizer steps (set steps or epochs)")
    epochs: PositiveFloat | None = Field(None, description="epochs of the stream (set steps or epochs)")
    lr: PositiveFloat = 2e-4
    betas: tuple[Float, Float] = (0.9, 0.999)
    weight_decay: NonNegFloat = 0.0
    warmup_steps: NonNegInt = Field(0, description="linear warm-up steps before the cosine decay")
    min_lr: NonNegFloat = Field(0.0, description="learning rate at the end of the cosine")
    fft_weight: NonNegFloat = Field(0.1, description="weight of the Fourier-domain L1 term (MoCE-IR: 0.1)")
    input_error_power: NonNegFloat = Field(
        0.0, description="weight each sample's loss by (0.1 / (its input's mean abs error + 0.02)) ** this; "
                         "0 = the paper's loss (the demo uses 0.5, docs/quickstart.md)")
    grad_clip: PositiveFloat | None = Field(None, description="max global grad norm; None = no clipping")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto = bf16 autocast on CUDA, fp32 on CPU")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: PositiveInt | None = Field(
        None, description="torch CPU threads; None = $OMP_NUM_THREADS if set, else cores - num_workers (min 1)"
    )
    seed: NonNegInt = 0
    # run directory and bookkeeping
    out: Path | None = Field(None, description="run folder; None = runs/<name>")
    name: str | None = Field(None, description="run name; None = <variant>-seed<seed>")
    resume: StrictBool = Field(False, description="continue from out/checkpoints/latest")
    overwrite: StrictBool = Field(False, description="allow training into a run folder that has checkpoints")
    ckpt_every: PositiveInt = Field(1000, description="checkpoint every N steps (and always at the end)")
    keep_checkpoints: PositiveInt = Field(2, description="how many recent checkpoints to keep")
    log_every: PositiveInt = Field(10, description="metrics.jsonl / progress-bar update interval in steps")
    balance_every: PositiveInt = Field(100, description="steps between BalanceController.update calls")
    progress: StrictBool = True
    debug_log_keys: StrictBool = Field(False, description="write the sample keys each rank saw to RUN_DIR/keys/")
    # acted on by the CLI after training (anyir.train never imports eval/leaderboard)
    eval: StrictBool = Field(False, description="evaluate the final model on the test split")
    leaderboard: Path | None = Field(None, description="DuckDB file to log the evaluated run to")

    @field_validator("ablation")
    @classmethod
    def _check_ablation(cls, value: dict[str, Any]) -> dict[str, Any]:
        from anyir.model.config import Ablation  # the model's own validation names the bad field

        try:
            Ablation(**value)
        except TypeError as err:
            known = ", ".join(f.name for f in dataclasses.fields(Ablation))
            raise ValueError(f"{err}; known ablation fields: {known}") from None
        return value

    @model_validator(mode="after")
    def _check_length(self) -> TrainConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(
                f"set exactly one of steps / epochs (got steps={self.steps}, epochs={self.epochs}); "
                "e.g. --steps 1000, or --epochs 120 for the paper's 3-task protocol"
            )
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr} is larger than lr={self.lr}; lower --min-lr")
        if self.leaderboard is not None and not self.eval:
            raise ValueError(f"leaderboard={self.leaderboard} needs eval=true (add --eval)")
        return self

    @property
    def run_name(self) -> str:
        """The run's name, decided here once: ``name``, else the folder name of ``out``, else
        ``<variant>-seed<seed>`` (identical on every rank; the summary and the leaderboard use it)."""
        return self.name or (self.out.name if self.out is not None else f"{self.variant}-seed{self.seed}")

    @property
    def run_dir(self) -> Path:
        """The run folder: ``out`` or ``runs/<run_name>``."""
        return self.out if self.out is not None else Path("runs") / self.run_name

    def to_yaml(self) -> str:
        """The resolved config as YAML (paths as strings), loadable by ``load_config``."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class ConfigError(ValueError):
    """A config file or option is invalid; the message names the file, the key, the value and the fix."""


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Build a `TrainConfig` from an optional YAML file, with ``overrides`` (e.g. CLI flags) on top."""
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_yaml(Path(path))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError(_describe(err, path)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value, got {type(data).__name__}")
    return data


def _describe(err: ValidationError, path: Path | None) -> str:
    """One line per problem: key, value received, what was expected, where it came from."""
    where = f"config file {path} / command line" if path else "training options"
    lines = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"]) or "(config)"
        if problem["type"] == "extra_forbidden":
            known = ", ".join(TrainConfig.model_fields)
            lines.append(f"unknown option {key!r} in {where}; known options: {known}")
        else:
            received = problem.get("input")
            lines.append(f"option {key!r} in {where}: {problem['msg']} (got {received!r})")
    return "; ".join(lines)
