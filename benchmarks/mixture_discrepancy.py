"""How far the planned mixture strays from its share, over many random shapes.

For random (tasks, weights with some tiny ones, world size, workers, batch size, steps) it
plans a segment with :func:`anyir.data.low_discrepancy.plan_counts` and prints the largest
``|count - share|`` after any step (total, per rank) and after any worker batch, how often each
bound held, how often the planner had to back up or loosen a bound, and the planning time per
step. A seeded random order of the same exact counts (the plan before issue 13) is shown too.

    .venv/bin/python benchmarks/mixture_discrepancy.py --shapes 400 --seed 0

Times are wall-clock; on the shared 2-core development box they are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from anyir.data.balance import epoch_counts
from anyir.data.low_discrepancy import PlanStats, plan_counts, prefix_errors


def random_order(final: np.ndarray, steps: int, ranks: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    ids = rng.permutation(np.repeat(np.arange(len(final)), final)).reshape(steps, ranks, batch)
    return np.stack([(ids == t).sum(axis=2) for t in range(len(final))], axis=2)


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
        workers, batch = int(rng.integers(1, 5)), int(rng.integers(1, 17))
        steps, first = int(rng.integers(5, 200)), int(rng.integers(0, 7))
        raw = rng.random(n_tasks) ** 3 + 0.005
        w = raw / raw.sum()
        exact = epoch_counts({str(i): x for i, x in enumerate(w)}, steps * ranks * batch)
        final = np.array([exact[str(i)] for i in range(n_tasks)])
        start = time.perf_counter()
        counts = plan_counts(w, final, steps, ranks, batch, workers, first, rng.random((steps, ranks, n_tasks)), stats)
        seconds += time.perf_counter() - start
        steps_total += steps
        planned.append(prefix_errors(counts, w, workers, first))
        shuffled.append(prefix_errors(random_order(final, steps, ranks, batch, rng), w, workers, first))
    for name, errors in (("low-discrepancy plan", np.array(planned)), ("random order (before)", np.array(shuffled))):
        print(f"{name}: worst |count - share| total {errors[:, 0].max():.3f}, per rank {errors[:, 1].max():.3f}, "
              f"per worker {errors[:, 2].max():.3f}")
        print(f"  shapes with total < 1: {np.mean(errors[:, 0] < 1):.1%}, rank < 1: {np.mean(errors[:, 1] < 1):.1%}, "
              f"worker < 1: {np.mean(errors[:, 2] < 1):.1%}, worker < 2: {np.mean(errors[:, 2] < 2):.1%}")
    print(f"planner: {stats}; {1e3 * seconds / steps_total:.2f} ms per step over {steps_total} steps "
          f"(busy shared machine: noisy)")


if __name__ == "__main__":
    main()
