"""The mixture plan alone: exact counts, consumer ranges, task sequence order (no I/O)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from anyir.data.balance import epoch_counts
from anyir.data.mixture import TaskOrder, allocate_ranges, plan_epoch, plan_segment

TASKS = ["a", "b", "c"]


def test_segment_has_exact_counts_and_shape():
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    seg = plan_segment(TASKS, weights, 0, 7, world_size=3, batch_size=5, seed=1, epoch=0)
    assert seg.slots.shape == (7, 3, 5)
    got = Counter(TASKS[i] for i in seg.slots.ravel())
    assert dict(got) == {t: n for t, n in epoch_counts(weights, 105).items() if n}


def test_segment_order_depends_on_seed_and_epoch_only():
    w = {"a": 1.0, "b": 1.0, "c": 1.0}
    one = plan_segment(TASKS, w, 0, 10, 2, 4, seed=5, epoch=2).slots
    assert np.array_equal(one, plan_segment(TASKS, w, 0, 10, 2, 4, seed=5, epoch=2).slots)
    assert not np.array_equal(one, plan_segment(TASKS, w, 0, 10, 2, 4, seed=5, epoch=3).slots)
    assert not np.array_equal(one, plan_segment(TASKS, w, 0, 10, 2, 4, seed=6, epoch=2).slots)


def test_weight_change_starts_an_exact_segment():
    history = [(0, {"a": 1.0, "b": 1.0}), (4, {"c": 1.0})]
    segs = plan_epoch(TASKS, history, steps=10, world_size=2, batch_size=3, seed=0, epoch=0)
    assert [(s.start, s.end) for s in segs] == [(0, 4), (4, 10)]
    assert set(segs[1].slots.ravel()) == {2}
    # steps taken before the change keep the plan they were made with
    unchanged = plan_epoch(TASKS, history[:1], steps=10, world_size=2, batch_size=3, seed=0, epoch=0)[0]
    assert np.array_equal(segs[0].slots, unchanged.slots[:4])


@pytest.mark.parametrize("world_size,num_workers", [(1, 1), (2, 2), (3, 4)])
def test_allocated_ranges_tile_each_task_sequence(world_size, num_workers):
    history = [(0, {"a": 0.6, "b": 0.3, "c": 0.1}), (5, {"a": 0.1, "b": 0.1, "c": 0.8})]
    segs = plan_epoch(TASKS, history, 13, world_size, 2, seed=3, epoch=1)
    ranges = allocate_ranges(segs, len(TASKS), world_size, num_workers)
    for t in range(len(TASKS)):
        spans = sorted(r for (j, c, tt), r in ranges.items() if tt == t)
        assert spans[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # contiguous, disjoint
    for rank in range(world_size):
        for worker in range(num_workers):
            c = rank * num_workers + worker
            for t in range(len(TASKS)):
                handed = sum(b - a for (j, cc, tt), (a, b) in ranges.items() if (cc, tt) == (c, t))
                taken = sum(int((s.consumer_slots(rank, worker, num_workers) == t).sum()) for s in segs)
                assert handed >= taken  # every slot has a planned position


def test_static_weights_hand_out_exactly_the_demand():
    segs = plan_epoch(TASKS, [(0, {"a": 0.5, "b": 0.25, "c": 0.25})], 12, 2, 3, seed=0, epoch=0)
    ranges = allocate_ranges(segs, len(TASKS), 2, 2)
    for (_, c, t), (a, b) in ranges.items():
        rank, worker = divmod(c, 2)
        assert b - a == int((segs[0].consumer_slots(rank, worker, 2) == t).sum())
    assert max(b for (_, _, t), (_, b) in ranges.items() if t == 0) == 36


def test_weight_change_keeps_earlier_ranges():
    history = [(0, {"a": 1.0, "b": 1.0, "c": 1.0})]
    before = allocate_ranges(plan_epoch(TASKS, history, 10, 2, 2, 0, 0), 3, 2, 2)
    after = allocate_ranges(plan_epoch(TASKS, history + [(4, {"a": 1.0})], 10, 2, 2, 0, 0), 3, 2, 2)
    assert {k: v for k, v in after.items() if k[0] == 0} == before


def test_task_order_visits_every_sample_once_per_pass():
    sizes = [5, 0, 3, 8]
    order = TaskOrder(sizes, seed=0, epoch=0, task="a")
    for p in range(3):
        seen = [order.locate(q) for q in range(p * 16, (p + 1) * 16)]
        assert sorted(seen) == sorted((s, o) for s, n in enumerate(sizes) for o in range(n))
    # consecutive positions read forward through a shard (sequential reads) except at shard ends
    seen = [order.locate(q) for q in range(16)]
    forward = sum(b == (a[0], a[1] + 1) for a, b in zip(seen, seen[1:], strict=False))
    assert forward >= 16 - 1 - 4


def test_task_order_moves_between_epochs():
    starts = {TaskOrder([10, 10], seed=0, epoch=e, task="a").locate(0) for e in range(8)}
    assert len(starts) > 3
