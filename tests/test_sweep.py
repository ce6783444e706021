"""Balance sweeps: spec parsing, resume, seed aggregation, and the adaptive balance (incl. 2-rank DDP)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anyir.cli import app
from anyir.cli.sweep_cmd import split_balances
from anyir.data.balance import parse_balance
from anyir.leaderboard.store import reader, transaction
from anyir.leaderboard.sweeps import aggregate_sweep, sweep_runs, sweep_table
from anyir.train.adaptive import AdaptiveBalance, AdaptiveSettings, identity_losses
from anyir.train.balance_control import BalanceSignals

REPO = Path(__file__).resolve().parents[1]


def test_split_balances_groups_explicit_weights():
    assert split_balances("natural,uniform,derain=2,dehaze=1,temperature:2,adaptive") == [
        "natural", "uniform", "derain=2,dehaze=1", "temperature:2", "adaptive"]
    assert split_balances("a=1,b=2;a=2,b=1") == ["a=1,b=2", "a=2,b=1"]
    assert split_balances("dro(floor=0.3,eta=2),a=1,b=2;progress:a=1,b=3,uniform") == [
        "dro(floor=0.3,eta=2)", "a=1,b=2", "progress:a=1,b=3", "uniform"]
    assert (parse_balance("adaptive").adaptive, str(parse_balance("adaptive").start)) == (True, "uniform")
    assert str(parse_balance("adaptive:natural").start) == "natural"
    assert not parse_balance("temperature:2").adaptive
    with pytest.raises(Exception, match="dro takes key=value parameters"):
        split_balances("uniform,dro(flor=0.3)")


def _signals(step: int, losses: dict[str, float], weights: dict[str, float] | None = None) -> BalanceSignals:
    return BalanceSignals(step, weights or {}, losses)


def test_adaptive_tilts_toward_the_least_restored_task():
    base = {"denoise": 0.5, "derain": 0.25, "dehaze": 0.25}
    ctrl = AdaptiveBalance(base, {"denoise": 1.0, "derain": 1.0, "dehaze": 1.0},
                           AdaptiveSettings(eta=2.0, smoothing=0.1, ema=0.0))
    weights = ctrl.update(_signals(10, {"denoise": 0.2, "derain": 0.9, "dehaze": 0.2}))  # derain barely restored
    assert abs(sum(weights.values()) - 1) < 1e-12
    assert weights["derain"] > base["derain"] and weights["denoise"] < base["denoise"]
    # bounded: no task below the uniform floor, ratio of tilts at most exp(eta)
    assert min(weights.values()) >= 0.1 / 3
    assert 1 < weights["derain"] / weights["dehaze"] <= math.exp(2.0)
    # equal unrestored fractions -> the base weights, mixed with uniform
    again = AdaptiveBalance(base, {"denoise": 2.0, "derain": 1.0, "dehaze": 1.0},
                            AdaptiveSettings(smoothing=0.0, ema=0.0)).update(
        _signals(1, {"denoise": 1.0, "derain": 0.5, "dehaze": 0.5}))
    assert again == pytest.approx(base)
    # resume: the EMA state round-trips
    clone = AdaptiveBalance(base, ctrl.reference, ctrl.settings)
    clone.load_state_dict(json.loads(json.dumps(ctrl.state_dict())))
    assert clone.update(_signals(20, {"denoise": 0.3})) == ctrl.update(_signals(20, {"denoise": 0.3}))


def test_identity_reference_is_deterministic_and_positive(tiny_shards):
    a = identity_losses(tiny_shards, ["denoise", "derain"], crop=32, fft_weight=0.1, seed=1, samples_per_task=4)
    b = identity_losses(tiny_shards, ["denoise", "derain"], crop=32, fft_weight=0.1, seed=1, samples_per_task=4)
    assert a == b and all(v > 0 for v in a.values())


def test_floor_projection_raises_tasks_to_their_floor_and_keeps_the_others_proportions():
    from anyir.train.balance_control import floor_projection

    lower = {"a": 0.1, "b": 0.1, "c": 0.1}
    out = floor_projection({"a": 0.9, "b": 0.08, "c": 0.02}, lower)
    assert sum(out.values()) == pytest.approx(1) and out["b"] == out["c"] == pytest.approx(0.1)
    assert out["a"] == pytest.approx(0.8)
    mixed = floor_projection({"a": 0.6, "b": 0.3, "c": 0.1}, {"a": 0.0, "b": 0.0, "c": 0.2})
    assert mixed["c"] == pytest.approx(0.2) and mixed["a"] / mixed["b"] == pytest.approx(2.0)
    feasible = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert floor_projection(feasible, lower) == pytest.approx(feasible)
    with pytest.raises(ValueError, match="sum to more than 1"):
        floor_projection(feasible, {"a": 0.5, "b": 0.5, "c": 0.5})


def _probe(tasks=("a", "b", "c")):
    import torch

    from anyir.train.probe import Probe

    return Probe({t: torch.zeros(1, 3, 4, 4) for t in tasks}, {t: torch.ones(1, 3, 4, 4) for t in tasks}, 0.0)


def test_progress_follows_the_moving_task_per_unit_of_weight_and_respects_its_floor():
    from anyir.train.progress import LearningProgressBalance, ProgressSettings

    base = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    ctrl = LearningProgressBalance(base, _probe(), ProgressSettings(eta=1.0, floor=0.5, ema=0.0))
    assert ctrl.update(BalanceSignals(5, base, {}, {"a": 1.0, "b": 1.0, "c": 1.0})) is None  # a slope needs 2 points
    # a halves its loss, b improves a little, c is flat: a gains, c loses, nobody goes below half its base
    w = ctrl.update(BalanceSignals(10, base, {}, {"a": 0.5, "b": 0.9, "c": 1.0}))
    assert sum(w.values()) == pytest.approx(1) and w["a"] > base["a"] > w["b"] > w["c"] >= 0.5 * base["c"]
    # forgetting counts like learning, and per unit of weight: c, down-weighted, loses 10% -> it wins weight back
    again = ctrl.update(BalanceSignals(15, w, {}, {"a": 0.45, "b": 0.85, "c": 1.1}))
    assert again["c"] > w["c"] and again["c"] > again["b"]
    # exact resume: the slopes and last losses round-trip through the checkpoint's JSON-able state
    clone = LearningProgressBalance(base, _probe(), ctrl.settings)
    clone.load_state_dict(json.loads(json.dumps(ctrl.state_dict())))
    nxt = BalanceSignals(20, again, {}, {"a": 0.44, "b": 0.8, "c": 1.0})
    assert clone.update(nxt) == ctrl.update(nxt)
    # nothing moves: the base weights
    flat = LearningProgressBalance(base, _probe(), ProgressSettings(ema=0.0))
    flat.update(BalanceSignals(1, base, {}, {"a": 1.0, "b": 1.0, "c": 1.0}))
    assert flat.update(BalanceSignals(2, base, {}, {"a": 1.0, "b": 1.0, "c": 1.0})) == pytest.approx(base)


def test_dro_ascends_on_the_worst_normalised_task_accumulating_above_a_floor():
    from anyir.train.dro import DROSettings, GroupDROBalance

    base = {"a": 0.5, "b": 0.25, "c": 0.25}
    ctrl = GroupDROBalance(base, _probe(), {"a": 1.0, "b": 2.0, "c": 1.0}, DROSettings(eta=2.0, floor=0.5))
    probe = {"a": 0.2, "b": 1.8, "c": 0.5}  # normalised: a 0.2, b 0.9 (worst), c 0.5
    w1 = ctrl.update(BalanceSignals(10, base, {}, probe))
    assert sum(w1.values()) == pytest.approx(1) and w1["b"] > base["b"] and w1["a"] < base["a"]
    w2 = ctrl.update(BalanceSignals(20, w1, {}, probe))  # the tilt accumulates from the weights in force
    assert w2["b"] > w1["b"]
    w = w2
    for step in range(30, 200, 10):
        w = ctrl.update(BalanceSignals(step, w, {}, probe))
    assert w["a"] == pytest.approx(0.5 * base["a"]) and w["c"] >= 0.5 * base["c"] - 1e-12  # the floor holds
    # a task at its floor gets weight back at the next update where it is the worst
    back = ctrl.update(BalanceSignals(300, w, {}, {"a": 1.0, "b": 0.2, "c": 0.2}))
    assert back["a"] > w["a"]
    assert ctrl.state_dict() == {}  # stateless: the weights live in the stream


def test_probe_is_deterministic_spread_and_scores_the_identity_like_its_reference(tiny_shards):
    import torch

    from anyir.data.shardset import ShardSet
    from anyir.train.distributed import DistEnv
    from anyir.train.probe import Probe, spread_positions

    assert spread_positions(10, 3) == [1, 5, 8] and spread_positions(2, 5) == [0, 1]
    shards = ShardSet.open(tiny_shards)
    a = Probe.build(shards, ["denoise", "derain"], 3, crop=32, fft_weight=0.1, seed=1)
    b = Probe.build(shards, ["derain", "denoise"], 3, crop=32, fft_weight=0.1, seed=1)
    assert a.tasks == ["denoise", "derain"] and all(torch.equal(a.lq[t], b.lq[t]) for t in a.tasks)
    assert a.lq["derain"].shape == (3, 3, 32, 32)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    reference = a.identity_losses()
    assert all(v > 0 for v in reference.values())
    assert a.losses(torch.nn.Identity(), env) == pytest.approx(reference)  # the identity model = the reference


def _fake_run(con, sweep_id: str, name: str, spec: str, seed: int, psnr: dict[str, float]) -> None:
    con.execute("INSERT INTO runs (run_id, name, origin, sweep_id, seed, balance) VALUES (?, ?, 'local', ?, ?, ?)",
                [f"{sweep_id}/{name}", name, sweep_id, seed, json.dumps({"spec": spec})])
    for task, value in psnr.items():
        con.execute("INSERT INTO results VALUES (?, ?, 'demo', 'psnr', ?, 3, 'promptir')",
                    [f"{sweep_id}/{name}", task, value])


def test_seed_aggregation_marks_only_significant_differences(tmp_path):
    db = tmp_path / "lb.duckdb"
    with transaction(db) as con:
        for seed, (a, b) in enumerate([(30.0, 20.0), (30.2, 20.4)]):
            _fake_run(con, "sw", f"uniform-s{seed}", "uniform", seed, {"derain": a, "dehaze": b})
        for seed, (a, b) in enumerate([(31.0, 20.1), (31.2, 20.3)]):
            _fake_run(con, "sw", f"natural-s{seed}", "natural", seed, {"derain": a, "dehaze": b})
        _fake_run(con, "other", "x", "uniform", 0, {"derain": 99.0})
    with reader(db) as con:
        rows = sweep_runs(con, "sw")
    agg = aggregate_sweep(rows, reference="uniform").set_index(["balance", "task", "metric"])
    derain = agg.loc[("natural", "derain", "psnr")]
    assert derain["mean"] == pytest.approx(31.1) and derain["seeds"] == 2
    assert derain["sd"] == pytest.approx(0.141421356, rel=1e-6)
    # 1.0 dB over 2 seeds of sd 0.14 each side: Welch t = 7.1 at df = 2, p = 0.019
    assert derain["delta"] == pytest.approx(1.0) and bool(derain["significant"])
    assert derain["p_value"] == pytest.approx(0.0194, abs=5e-4)
    assert not bool(agg.loc[("natural", "dehaze", "psnr")]["significant"])  # 0.0 dB
    assert agg.loc[("natural", "average", "psnr")]["mean"] == pytest.approx((31.1 + 20.2) / 2)
    table = sweep_table(aggregate_sweep(rows, reference="uniform"))
    assert "*" in table.loc["natural", "derain/demo"] and "*" not in table.loc["natural", "dehaze/demo"]
    with pytest.raises(LookupError):
        with reader(db) as con:
            sweep_runs(con, "missing")


def test_two_seed_differences_need_welch_not_two_standard_errors(tmp_path):
    # the README's demo sweep, deblur: natural 22.93 ± 0.61 vs uniform 21.88 ± 0.28 over 2 seeds.
    # +1.05 dB is more than 2 standard errors (0.95) but Welch's t = 2.2 at df = 1.4 has p = 0.2
    db = tmp_path / "lb.duckdb"
    with transaction(db) as con:
        for seed, (u, n) in enumerate([(21.68, 22.50), (22.08, 23.36)]):
            _fake_run(con, "sw", f"uniform-s{seed}", "uniform", seed, {"deblur": u})
            _fake_run(con, "sw", f"natural-s{seed}", "natural", seed, {"deblur": n})
    with reader(db) as con:
        rows = sweep_runs(con, "sw")
    agg = aggregate_sweep(rows, reference="uniform").set_index(["balance", "task", "metric"])
    deblur = agg.loc[("natural", "deblur", "psnr")]
    se = math.sqrt(deblur["sd"] ** 2 / 2 + agg.loc[("uniform", "deblur", "psnr")]["sd"] ** 2 / 2)
    assert deblur["delta"] == pytest.approx(1.05) and deblur["delta"] > 2 * se  # the old rule's '*'
    assert not bool(deblur["significant"]) and deblur["p_value"] > 0.1
    assert "*" not in sweep_table(aggregate_sweep(rows, reference="uniform")).loc["natural", "deblur/demo"]
    # at a looser level the same data count (p = 0.2 < 0.25)
    assert bool(aggregate_sweep(rows, reference="uniform", level=0.75)
                .set_index(["balance", "task", "metric"]).loc[("natural", "deblur", "psnr")]["significant"])
    with pytest.raises(ValueError, match="level"):
        aggregate_sweep(rows, level=1.5)


@pytest.mark.slow
def test_sweep_runs_logs_and_resumes_without_retraining(tiny_shards, tmp_path):
    db, out = tmp_path / "lb.duckdb", tmp_path / "sweeps"
    args = ["sweep", str(tiny_shards), "--balances", "uniform,adaptive", "--seeds", "1", "--variant", "pico",
            "--steps", "4", "--batch-size", "4", "--crop", "32", "--balance-every", "2",
            "--out", str(out), "--leaderboard", str(db), "--sweep-id", "sw-test"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    weights = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("sw-test/*/model.safetensors")}
    assert set(weights) == {"uniform-seed0", "adaptive-seed0"}
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("skipped") == 2
    assert {p.parent.name: p.stat().st_mtime_ns for p in out.glob("sw-test/*/model.safetensors")} == weights
    # An interrupted cell (no summary, no weights) is the only one trained again; rows are not duplicated.
    (out / "sw-test" / "uniform-seed0" / "train_summary.json").unlink()
    (out / "sw-test" / "uniform-seed0" / "model.safetensors").unlink()
    third = runner.invoke(app, args)
    assert third.exit_code == 0, third.output
    assert third.output.count("skipped") == 1 and "uniform-seed0: training" in third.output
    with reader(db) as con:
        runs = con.execute("SELECT name, balance->>'spec' FROM runs WHERE sweep_id = 'sw-test' ORDER BY 1").fetchall()
        traj = con.execute("SELECT count(DISTINCT step) FROM balance_trajectory b JOIN runs r USING (run_id) "
                           "WHERE r.name = 'adaptive-seed0'").fetchone()[0]
    assert runs == [("adaptive-seed0", "adaptive"), ("uniform-seed0", "uniform")]
    assert traj == 3  # step 0 + updates at steps 2 and 4
    shown = runner.invoke(app, ["leaderboard", "sweep", "sw-test", "--db", str(db)])
    assert shown.exit_code == 0 and "adaptive" in shown.output, shown.output


RECORDING_SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    from anyir.train import trainer
    from anyir.train.config import TrainConfig

    shards, out, balance = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    rank, default, name = os.environ["RANK"], trainer._default_controller, balance.split("(")[0]

    def recording(run):  # wrap the trainer's own controller to log each rank's decisions
        ctrl = default(run)
        update = ctrl.update
        def logged(signals):
            weights = update(signals)
            with open(out / f"{name}-rank{rank}.jsonl", "a") as f:
                f.write(json.dumps({"step": signals.step, "losses": signals.train_losses,
                                    "probe": signals.probe_losses, "weights": weights}, sort_keys=True) + "\\n")
            return weights
        ctrl.update = logged
        return ctrl

    trainer._default_controller = recording
    trainer.train(TrainConfig(shards=shards, variant="pico", steps=6, batch_size=4, crop=32, num_workers=0,
                              device="cpu", balance=balance, balance_every=2, out=out / name,
                              progress=False, seed=3))
''')


@pytest.mark.slow
def test_adaptive_balances_agree_across_two_ddp_ranks(tiny_shards, tmp_path):
    script = tmp_path / "record.py"
    script.write_text(RECORDING_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for balance in ("adaptive", "progress(probe=3)", "dro(probe=3,eta=4)"):  # one process group per launch
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tiny_shards), str(tmp_path), balance]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name, moves_at in (("adaptive", 3), ("progress", 2), ("dro", 3)):
        rank0 = (tmp_path / f"{name}-rank0.jsonl").read_text().splitlines()
        rank1 = (tmp_path / f"{name}-rank1.jsonl").read_text().splitlines()
        assert len(rank0) == 3 and rank0 == rank1, name  # same all-reduced numbers -> bit-identical weights
        records = [json.loads(line) for line in rank0]
        decisions = [r["weights"] for r in records if r["weights"] is not None]
        assert len(decisions) == moves_at, name  # progress needs two probe points before it moves
        assert all(abs(sum(w.values()) - 1) < 1e-9 for w in decisions)
        assert any(max(w.values()) - min(w.values()) > 1e-3 for w in decisions), name  # it did move the mix
        assert all(bool(r["probe"]) == (name != "adaptive") for r in records), name
        summary = json.loads((tmp_path / name / "train_summary.json").read_text())
        assert summary["balance"]["spec"].split("(")[0] == name
        assert len(summary["balance_trajectory"]) == 1 + moves_at
        assert summary["balance_trajectory"][-1]["weights"] == pytest.approx(decisions[-1])
