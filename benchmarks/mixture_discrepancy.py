"""How far the planned mixture strays from its share, over many random shapes.

For random (tasks, weights with some tiny ones, world size, loader workers, batch size, steps)
it plans a segment with :func:`anyir.data.low_discrepancy.plan_counts` and prints the largest
``|count - share|`` after any step, in total, per rank and per loader worker (each worker makes
a slice of every batch); how often each bound held; how often the planner had to back up, repair
a window exactly or loosen a bound; and the planning time per step. A seeded random order of the
same exact counts (the plan before issue 13) is shown too. Then the planning time for a few
realistic shapes (5 tasks, up to 8 ranks x 8 workers).

    .venv/bin/python benchmarks/mixture_discrepancy.py --shapes 400 --seed 0

Times are wall-clock; on the shared 2-core development box they are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from anyir.data.balance import epoch_counts
from anyir.data.low_discrepancy import PlanStats, plan_counts, prefix_errors, worker_sizes


def random_order(final: np.ndarray, steps: int, ranks: int, batch: int, workers: int,
                 rng: np.random.Generator) -> np.ndarray:
    ids = rng.permutation(np.repeat(np.arange(len(final)), final)).reshape(steps, ranks, batch)
    edges = np.concatenate([[0], np.cumsum(worker_sizes(batch, workers))])
    parts = [ids[:, :, a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return np.stack([np.stack([(p == t).sum(axis=2) for t in range(len(final))], axis=2) for p in parts], axis=2)


def exact_counts(w: np.ndarray, slots: int) -> np.ndarray:
    exact = epoch_counts({str(i): x for i, x in enumerate(w)}, slots)
    return np.array([exact[str(i)] for i in range(len(w))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    planned, shuffled, stats = [], [], PlanStats()
    steps_total, seconds = 0, 0.0
    for _ in range(args.shapes):
        n_tasks, ranks = int(rng.integers(2, 7)), int(rng.integers(1, 6))
        batch = int(rng.integers(1, 17))
        workers = min(int(rng.integers(1, 5)), batch)
        steps = int(rng.integers(5, 200))
        raw = rng.random(n_tasks) ** 3 + 0.005
        w = raw / raw.sum()
        final = exact_counts(w, steps * ranks * batch)
        start = time.perf_counter()
        counts = plan_counts(w, final, steps, ranks, batch, workers, rng.random((steps, ranks, workers, n_tasks)), stats)
        seconds += time.perf_counter() - start
        steps_total += steps
        planned.append(prefix_errors(counts, w))
        shuffled.append(prefix_errors(random_order(final, steps, ranks, batch, workers, rng), w))
    for name, errors in (("low-discrepancy plan", np.array(planned)), ("random order (before)", np.array(shuffled))):
        print(f"{name}: worst |count - share| total {errors[:, 0].max():.4f}, per rank {errors[:, 1].max():.4f}, "
              f"per worker {errors[:, 2].max():.4f}")
        print(f"  shapes with total < 1: {np.mean(errors[:, 0] < 1):.1%}, rank < 1: {np.mean(errors[:, 1] < 1):.1%}, "
              f"worker < 1: {np.mean(errors[:, 2] < 1):.1%}")
    print(f"planner: {stats}; {1e3 * seconds / steps_total:.2f} ms per step over {steps_total} steps "
          f"(busy shared machine: noisy)")
    w = np.array([2, 2, 1, 1, 1.0])
    w /= w.sum()
    print("realistic shapes (5 tasks, weights 2,2,1,1,1):")
    for ranks, workers, batch, steps in [(1, 4, 8, 300), (2, 4, 8, 300), (4, 4, 8, 300), (8, 8, 8, 100), (8, 8, 16, 100)]:
        one = PlanStats()
        start = time.perf_counter()
        counts = plan_counts(w, exact_counts(w, steps * ranks * batch), steps, ranks, batch, workers,
                             np.random.default_rng(0).random((steps, ranks, workers, 5)), one)
        per_step = 1e3 * (time.perf_counter() - start) / steps
        total, rank, worker = prefix_errors(counts, w)
        print(f"  {ranks} ranks x {workers} workers, batch {batch}: {per_step:.2f} ms per step; worst total "
              f"{total:.3f}, rank {rank:.3f}, worker {worker:.3f}; repairs {one.repairs}, widened "
              f"{one.widened + one.worker_widened}")


if __name__ == "__main__":
    main()
