"""`train(cfg)`: the training loop, identical in one process and under torchrun (DDP).

Reading order: `train` sets up (`_build`), resumes if asked, runs `_loop`, then `_finish` writes the
final weights and ``train_summary.json``. Each step all-reduces [loss, non-finite flag] so every rank
stops together on a NaN/inf loss (a rank that stopped alone would hang the others in backward).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from anyir.data.balance import BalanceSpec, parse_balance, resolve_weights
from anyir.data.manifest import Manifest
from anyir.data.shardset import ShardSet
from anyir.model import create_model
from anyir.model.io import save_model
from anyir.train import checkpoint as ckpt
from anyir.train.balance_control import BalanceController, BalanceSignals, ControllerSetup
from anyir.train.config import TrainConfig
from anyir.train.controllers import make_controller
from anyir.train.data import TrainData, build_train_data
from anyir.train.distributed import (
    DistEnv,
    all_reduce_sum,
    barrier,
    gather_ints,
    gather_objects,
    setup_distributed,
    teardown_distributed,
)
from anyir.train.errors import DiskFullError, NonFiniteLossError, RunDirError, TrainSetupError
from anyir.train.losses import input_error_weights, per_sample_loss, task_loss_sums
from anyir.train.run_dir import RunDir
from anyir.train.schedule import make_scheduler
from anyir.train.summary import code_version, command_line

StepHook = Callable[[int, float, torch.nn.Module], None]


@dataclass
class _Run:
    """Everything built at start-up."""

    cfg: TrainConfig
    env: DistEnv
    run_dir: RunDir
    shards: ShardSet
    data: TrainData
    model: torch.nn.Module  # unwrapped: what is saved
    net: torch.nn.Module  # what is called: compiled and/or DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    total_steps: int
    tasks: list[str]
    autocast_dtype: torch.dtype | None

    @property
    def manifest(self) -> Manifest:
        """The shard set's manifest."""
        return self.shards.manifest


@dataclass
class _State:
    """What changes as training goes; the resumable parts are saved in checkpoints."""

    step: int = 0
    samples: torch.Tensor | None = None  # per task, this rank (+ the global total so far on rank 0)
    loss_sums: torch.Tensor | None = None  # per task since the last controller update
    loss_counts: torch.Tensor | None = None
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # a record of the stream's weights
    wait_s: float = 0.0  # time blocked on the loader, this session
    loop_s: float = 0.0  # time in the loop, this session
    prior_wall_s: float = 0.0  # wall time of earlier sessions (resume)
    prior_rates: dict[str, float] = field(default_factory=dict)  # images/s, wait share of the last session
    steps_this_session: int = 0
    last_loss: float = float("nan")
    resumed_from: str | None = None


def train(
    cfg: TrainConfig, controller: BalanceController | None = None, on_step: StepHook | None = None
) -> dict[str, Any]:
    """Train per ``cfg`` (one process or one torchrun rank); return the summary (written by rank 0).

    ``controller`` may change the task weights every ``cfg.balance_every`` steps (see balance_control);
    ``on_step(step, loss, model)`` runs on every rank after each optimizer step and checkpoint (tests use
    it to simulate a kill or inject a fault).

    Nothing in the run folder is written before the options are validated against it (a failed
    ``--resume`` leaves ``config.yaml`` as it was). Under ``torchrun --max-restarts N`` a restarted
    group resumes from the latest checkpoint by itself.
    """
    env = setup_distributed(cfg.device)
    run_dir = RunDir(cfg.run_dir)
    try:
        cfg = _resolve_resume(cfg, run_dir, env)
        if env.is_main:
            run_dir.lock()  # before anything is written; fails with the holder named
        run = _build(cfg, env, run_dir)
        state = _initial_state(run)
        controller = controller or _default_controller(run)
        if cfg.resume:
            _resume(run, state, controller)
        if env.is_main:
            _start_record(run)
        barrier(env)
        try:
            _loop(run, state, controller, on_step)
        except NonFiniteLossError:
            _finish(run, state, finished=False)  # record how far it got; the weights are not saved
            raise
        return _finish(run, state, finished=True)
    except Exception as err:
        if ckpt.is_disk_full(err) and not isinstance(err, DiskFullError):
            raise DiskFullError(_disk_full_message(run_dir, err)) from None
        raise
    finally:
        run_dir.unlock()
        teardown_distributed()


# ----------------------------------------------------------------------------- set-up


def _build(cfg: TrainConfig, env: DistEnv, run_dir: RunDir) -> _Run:
    """Shard set -> weights -> stream; model -> DDP; optimizer and schedule. Writes nothing."""
    _check_run_dir(cfg, run_dir)
    shards = ShardSet.open(cfg.shards, cfg.shards_url_prefix)
    manifest = shards.manifest
    tasks = manifest.tasks("train")
    weights = resolve_weights(_balance(cfg, manifest), manifest.counts("train"), manifest.repeats)
    data = build_train_data(cfg, env, weights, shards)
    _check_ranks_agree(data.steps_per_epoch, env)
    total_steps = cfg.steps if cfg.steps is not None else max(1, round(cfg.epochs * data.steps_per_epoch))
    model, net = _make_model(cfg, env)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, total_steps, cfg.warmup_steps, cfg.lr, cfg.min_lr)
    return _Run(cfg, env, run_dir, shards, data, model, net, optimizer, scheduler, total_steps, tasks,
                _autocast_dtype(cfg, env))


def _resolve_resume(cfg: TrainConfig, run_dir: RunDir, env: DistEnv) -> TrainConfig:
    """A restart by torchrun (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes from the latest checkpoint."""
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    if restarts > 0 and not cfg.resume and run_dir.has_checkpoint():
        if env.is_main:
            print(f"anyir: torchrun restart {restarts}: resuming {run_dir.path} from its latest checkpoint",
                  flush=True)
        return cfg.model_copy(update={"resume": True})
    if restarts > 0 and not cfg.resume:
        return cfg.model_copy(update={"overwrite": True})  # the earlier attempt was this very run
    return cfg


def _disk_full_message(run_dir: RunDir, err: BaseException, what: str | None = None) -> str:
    """Which disk filled up, how much is left, and what was kept (one line)."""
    import shutil

    where = what or getattr(err, "filename", None) or run_dir.path
    try:
        usage = shutil.disk_usage(run_dir.path)
        space = f"{usage.free / 1e6:.1f} MB free of {usage.total / 1e6:.1f} MB on the disk holding {run_dir.path}"
    except OSError:
        space = f"the disk holding {run_dir.path}"
    last = ckpt.latest_checkpoint(run_dir.checkpoints)
    kept = (f"the last good checkpoint is {last} (continue with --resume once there is space)" if last
            else "no checkpoint was written yet")
    return (f"disk full while writing {where} ({space}); training stopped, {kept}. "
            "Free space, lower --keep-checkpoints, or use another --out")


def _start_record(run: _Run) -> None:
    """Rank 0, after validation and resume: clean leftovers, write config.yaml and the command line."""
    run.run_dir.clean_stale()
    if not run.cfg.resume:
        run.run_dir.clear_training()
    run.run_dir.write_config(run.cfg.to_yaml())
    run.run_dir.append_command(command_line())


def _balance(cfg: TrainConfig, manifest: Manifest) -> BalanceSpec:
    """The balance asked for, or the shard set's default, parsed (its canonical spelling goes in the summary)."""
    return parse_balance(cfg.balance if cfg.balance is not None else manifest.default_balance)


def _default_controller(run: _Run) -> BalanceController:
    """The controller of the run's balance (anyir.train.controllers): StaticBalance for static ones."""
    cfg = run.cfg
    setup = ControllerSetup(run.shards, run.data.weights, cfg.crop, cfg.fft_weight, cfg.seed)
    return make_controller(_balance(cfg, run.manifest), setup)


def _check_run_dir(cfg: TrainConfig, run_dir: RunDir) -> None:
    """Refuse to silently mix two runs in one folder."""
    has_ckpt = run_dir.has_checkpoint()
    if cfg.resume and not has_ckpt:
        raise RunDirError(f"--resume: no checkpoint in {run_dir.checkpoints}; check --out, or drop --resume")
    if not cfg.resume and has_ckpt and not cfg.overwrite:
        raise RunDirError(
            f"run folder {run_dir.path} already has checkpoints; pass --resume to continue it, "
            "--overwrite to start over in it, or another --out"
        )


def _check_ranks_agree(steps_per_epoch: int, env: DistEnv) -> None:
    """Every rank must run the same number of steps per epoch, or DDP hangs at the epoch's end."""
    per_rank = gather_ints(steps_per_epoch, env)
    if len(set(per_rank)) != 1:
        raise TrainSetupError(f"ranks disagree on steps per epoch {per_rank}; the stream must give every rank "
                              "the same count (same shards, balance, batch size and seed on every rank)")
    if steps_per_epoch < 1:
        raise TrainSetupError("0 steps per epoch: the epoch holds fewer samples than one global batch; "
                              "lower --batch-size or raise --samples-per-epoch")


def _make_model(cfg: TrainConfig, env: DistEnv) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Create the variant with the same seed on every rank; compile and wrap in DDP as asked."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(_cpu_threads(cfg))
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels
    model = create_model(cfg.variant, _ablation(cfg)).to(env.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = torch.compile(model) if cfg.compile else model
    if env.distributed:
        # Depthwise-conv weight grads (Cx1xkxk) come back with a different stride on their size-1 dim
        # than DDP's bucket view; DDP copies them (tiny tensors), so the warning is noise here.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        device_ids = [env.local_rank] if env.device.type == "cuda" else None
        net = DistributedDataParallel(net, device_ids=device_ids)
    torch.manual_seed(cfg.seed + 1000 * env.rank)  # per-rank stream of anything random after init
    return model, net


def _cpu_threads(cfg: TrainConfig) -> int:
    """Intra-op threads: oversubscribed cores make OpenMP spin, measured 5-10x slower steps on 2 cores."""
    if cfg.threads is not None:
        return cfg.threads
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # torchrun and users set it deliberately
    return max(1, (os.cpu_count() or 1) - cfg.num_workers)


def _ablation(cfg: TrainConfig) -> Any:
    """The model's Ablation built from ``cfg.ablation`` (None when empty)."""
    if not cfg.ablation:
        return None
    from anyir.model import Ablation

    return Ablation(**cfg.ablation)


def _autocast_dtype(cfg: TrainConfig, env: DistEnv) -> torch.dtype | None:
    """bf16 under autocast when asked (auto: on CUDA only), else None (plain fp32)."""
    if cfg.precision == "bf16" or (cfg.precision == "auto" and env.device.type == "cuda"):
        return torch.bfloat16
    return None


def _initial_state(run: _Run) -> _State:
    """Zeroed counters and the first balance-trajectory entry."""
    zeros = torch.zeros(len(run.tasks), dtype=torch.float64, device=run.env.device)
    return _State(samples=zeros.clone(), loss_sums=zeros.clone(), loss_counts=zeros.clone(),
                  trajectory=[{"step": 0, "weights": run.data.weights}])


# ----------------------------------------------------------------------------- resume / checkpoint


def _resume(run: _Run, state: _State, controller: BalanceController) -> None:
    """Restore weights, optimizer, schedule, counters, RNG and loader state from the latest checkpoint.

    Everything is checked before anything changes on disk: a mismatch (world size, loader settings)
    raises RunDirError and the run folder stays as it was.
    """
    path = ckpt.latest_checkpoint(run.run_dir.checkpoints)
    assert path is not None  # _check_run_dir guarantees it
    saved = ckpt.load_checkpoint(path, run.model)
    if saved["world_size"] != run.env.world_size:
        raise RunDirError(f"checkpoint {path} was written with world size {saved['world_size']}, this run has "
                          f"{run.env.world_size}; resume with the same number of processes")
    mine = saved["ranks"][run.env.rank]
    try:
        run.data.load_state_dict(mine["loader"])
    except ValueError as err:
        raise RunDirError(f"cannot resume {run.run_dir.path}: {err}") from None
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    ckpt.set_rng_state(mine["rng"])
    state.step = int(saved["step"])
    if run.env.is_main:  # the global count so far lives on rank 0; the final all-reduce adds the rest
        state.samples += torch.tensor([saved["samples_per_task"].get(t, 0) for t in run.tasks],
                                      dtype=torch.float64, device=run.env.device)
    state.trajectory = list(saved["balance_trajectory"])
    state.prior_wall_s = float(saved["wall_time_s"])
    state.prior_rates = {k: float(v) for k, v in saved.get("rates", {}).items()}
    state.resumed_from = path.name
    if hasattr(controller, "load_state_dict"):
        controller.load_state_dict(saved.get("controller", {}))
    run.run_dir.truncate_logs(state.step, run.env.rank, run.env.is_main)


def _save(run: _Run, state: _State, controller: BalanceController) -> None:
    """Collective: gather per-rank state and global counts, then rank 0 writes the checkpoint."""
    per_rank = gather_objects({"rng": ckpt.rng_state(), "loader": run.data.state_dict()}, run.env)
    samples = _global_samples(run, state)
    if not run.env.is_main:
        return
    payload = {
        "step": state.step, "world_size": run.env.world_size,
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "ranks": per_rank, "samples_per_task": samples,  # the weights travel in each rank's stream state
        "balance_trajectory": state.trajectory, "wall_time_s": _wall_s(state), "rates": _rates(run, state),
        "controller": controller.state_dict() if hasattr(controller, "state_dict") else {},
    }
    try:
        ckpt.save_checkpoint(run.run_dir.checkpoints, state.step, run.model, payload,
                             _weights_metadata(run, state), run.cfg.keep_checkpoints)
    except Exception as err:
        if ckpt.is_disk_full(err):
            what = f"checkpoint {run.run_dir.checkpoints / ckpt.checkpoint_name(state.step)}"
            raise DiskFullError(_disk_full_message(run.run_dir, err, what)) from None
        raise


def _global_samples(run: _Run, state: _State) -> dict[str, int]:
    """Samples seen per task summed over ranks (collective)."""
    total = all_reduce_sum(state.samples.clone(), run.env)
    return {t: int(round(n)) for t, n in zip(run.tasks, total.tolist(), strict=True)}


# ----------------------------------------------------------------------------- the loop


def _loop(run: _Run, state: _State, controller: BalanceController, on_step: StepHook | None) -> None:
    """Step until ``total_steps``: fetch, forward, NaN guard, backward, update, log, checkpoint."""
    cfg, env = run.cfg, run.env
    task_index = {t: i for i, t in enumerate(run.tasks)}
    batches = run.data.batches()
    bar = tqdm(total=run.total_steps, initial=state.step, unit="step", dynamic_ncols=True,
               disable=not (env.is_main and cfg.progress), desc=f"train {cfg.run_name}")
    keys_log = _open_keys_log(run) if cfg.debug_log_keys else None
    loop_start = time.perf_counter()
    try:
        while state.step < run.total_steps:
            t0 = time.perf_counter()
            batch = next(batches)
            state.wait_s += time.perf_counter() - t0
            loss = _train_step(run, state, batch, task_index)
            state.step += 1
            state.steps_this_session += 1
            state.loop_s = time.perf_counter() - loop_start
            if keys_log is not None:
                keys_log.write("".join(f"{state.step}\t{t}\t{k}\n" for t, k in zip(batch["task"], batch["key"], strict=True)))
            _after_step(run, state, controller, loss, bar)
            if on_step is not None:
                on_step(state.step, loss, run.model)
    finally:
        bar.close()
        if keys_log is not None:
            keys_log.close()


def _train_step(run: _Run, state: _State, batch: dict[str, Any], task_index: dict[str, int]) -> float:
    """One optimizer step; returns the loss averaged over ranks. Raises NonFiniteLossError."""
    cfg, env = run.cfg, run.env
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    lq = batch["lq"].to(env.device, non_blocking=True).contiguous(memory_format=memory_format)
    gt = batch["gt"].to(env.device, non_blocking=True)
    with torch.autocast(env.device.type, dtype=run.autocast_dtype or torch.float32,
                        enabled=run.autocast_dtype is not None):
        pred = run.net(lq)
    losses = per_sample_loss(pred, gt, cfg.fft_weight)
    loss = (losses * input_error_weights(lq, gt, cfg.input_error_power)).mean()
    check = torch.stack([loss.detach().double(), (~torch.isfinite(loss.detach())).double()])
    all_reduce_sum(check, env)
    if check[1] > 0:
        raise NonFiniteLossError(_nan_message(run, state, batch))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    sums, counts = task_loss_sums(losses, batch["task"], task_index)
    state.loss_sums += sums
    state.loss_counts += counts
    state.samples += counts
    return float(check[0]) / env.world_size


def _nan_message(run: _Run, state: _State, batch: dict[str, Any]) -> str:
    """Where it happened and what the batch held, plus what to try."""
    mix: dict[str, int] = {}
    for task in batch["task"]:
        mix[task] = mix.get(task, 0) + 1
    last = ckpt.latest_checkpoint(run.run_dir.checkpoints)
    kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    return (f"non-finite loss at step {state.step + 1} (rank {run.env.rank}; batch task mix {mix}, "
            f"lr {run.scheduler.get_last_lr()[0]:.3g}); training stopped, {kept}. "
            "Try a lower --lr, --grad-clip 1.0 or --precision fp32, then --resume")


def _after_step(run: _Run, state: _State, controller: BalanceController, loss: float, bar: tqdm) -> None:
    """Logging, the balance hook and checkpoints (collectives run on every rank at the same steps)."""
    cfg = run.cfg
    state.last_loss = loss
    if state.step % cfg.balance_every == 0:
        _update_balance(run, state, controller)
    if state.step % cfg.log_every == 0 or state.step == run.total_steps:
        _log(run, state, loss, bar)
    bar.update(1)
    if state.step % cfg.ckpt_every == 0 or state.step == run.total_steps:
        _save(run, state, controller)


def _update_balance(run: _Run, state: _State, controller: BalanceController) -> None:
    """All-reduce per-task loss means (and the probe's, for controllers with one), ask the controller,
    apply new weights to the stream and record what it holds."""
    sums = all_reduce_sum(state.loss_sums.clone(), run.env)
    counts = all_reduce_sum(state.loss_counts.clone(), run.env)
    means = {t: float(s / c) for t, s, c in zip(run.tasks, sums.tolist(), counts.tolist(), strict=True) if c > 0}
    state.loss_sums.zero_()
    state.loss_counts.zero_()
    probe = getattr(controller, "probe", None)
    probed = probe.losses(run.model, run.env, run.autocast_dtype) if probe is not None else {}
    new = controller.update(BalanceSignals(state.step, run.data.weights, means, probed))
    if new is not None:
        run.data.set_weights(new)
        state.trajectory.append({"step": state.step, "weights": run.data.weights})


def _log(run: _Run, state: _State, loss: float, bar: tqdm) -> None:
    """Progress-bar postfix and a ``metrics.jsonl`` line (rank 0)."""
    if not run.env.is_main:
        return
    images_per_s = _images_per_s(run, state)
    bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.1f}", refresh=False)
    line = {"step": state.step, "loss": loss, "lr": run.scheduler.get_last_lr()[0], "time_s": state.loop_s,
            "images_per_s": images_per_s, "loader_wait_share": _wait_share(state)}
    run.run_dir.append_metrics(line)


def _open_keys_log(run: _Run):
    """Per-rank file of ``step<TAB>task<TAB>key`` lines (debug: duplicate / coverage checks)."""
    path = run.run_dir.keys_log(run.env.rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a" if run.cfg.resume else "w", buffering=1)  # line-buffered: a killed rank loses no line


# ----------------------------------------------------------------------------- the end


def _images_per_s(run: _Run, state: _State) -> float:
    """Global training images per second over this session's loop."""
    return state.steps_this_session * run.cfg.batch_size / max(state.loop_s, 1e-9)


def _wait_share(state: _State) -> float:
    """Fraction of loop time spent blocked on the loader."""
    return state.wait_s / state.loop_s if state.loop_s > 0 else 0.0


def _rates(run: _Run, state: _State) -> dict[str, float]:
    """Throughput figures of this session, or of the last session that trained (a resumed finished run)."""
    if state.steps_this_session == 0 and state.prior_rates:
        return dict(state.prior_rates)
    return {"images_per_s": round(_images_per_s(run, state), 3), "loader_wait_share": round(_wait_share(state), 4)}


def _wall_s(state: _State) -> float:
    """Training wall time over all sessions so far."""
    return state.prior_wall_s + state.loop_s


def _weights_metadata(run: _Run, state: _State) -> dict[str, str]:
    """String metadata stored with the weights (the model config travels separately via save_model)."""
    return {
        "variant": run.cfg.variant, "recipe_name": run.manifest.recipe_name,
        "recipe_hash": run.manifest.recipe_hash, "run_name": run.cfg.run_name, "step": str(state.step),
        "balance": json.dumps(run.data.weights, sort_keys=True), "code_version": code_version(),
    }


def _finish(run: _Run, state: _State, finished: bool) -> dict[str, Any]:
    """Final weights (only when ``finished``) and ``train_summary.json`` on rank 0; all ranks return it."""
    samples = _global_samples(run, state)
    skipped = gather_objects({"shards": run.data.skipped_shards(), "replaced": run.data.replaced_samples()}, run.env)
    summary = _summary(run, state, samples, finished, skipped)
    if run.env.is_main:
        if finished:
            save_model(run.model, run.run_dir.weights, metadata=_weights_metadata(run, state))
        run.run_dir.write_summary(summary)
    barrier(run.env)
    return summary


def _summary(run: _Run, state: _State, samples: dict[str, int], finished: bool,
             skipped: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``train_summary.json`` content (keys per the shared contract, plus timing extras)."""
    cfg, model = run.cfg, run.model
    skipped_shards = {url: why for rank in skipped for url, why in rank["shards"].items()}
    return {
        "world_size": run.env.world_size, "steps": state.step, "total_steps": run.total_steps,
        "steps_per_epoch": run.data.steps_per_epoch, "epochs": state.step / run.data.steps_per_epoch,
        "wall_time_s": round(_wall_s(state), 3), **_rates(run, state),
        "balance": {"spec": str(_balance(cfg, run.manifest)), "weights": state.trajectory[0]["weights"]},
        "balance_trajectory": state.trajectory, "samples_per_task": samples,
        "samples_seen": sum(samples.values()),
        "skipped_shards": dict(sorted(skipped_shards.items())),
        "replaced_samples": sum(int(rank["replaced"]) for rank in skipped),
        "variant": cfg.variant, "model_config": model.config.to_dict(),
        "params": sum(p.numel() for p in model.parameters()),
        "recipe": {"name": run.manifest.recipe_name, "hash": run.manifest.recipe_hash},
        "shards": str(Path(cfg.shards).resolve()), "seed": cfg.seed, "config": cfg.model_dump(mode="json"),
        "code_version": code_version(), "finished": finished, "final_loss": state.last_loss,
        "device": str(run.env.device), "precision": "bf16" if run.autocast_dtype else "fp32",
        "run_name": cfg.run_name, "resumed_from": state.resumed_from,
    }
