"""Step-by-step task counts whose running mixture stays within one sample of its share.

The slots of a segment are ``steps`` global steps of ``world_size`` batches of ``batch_size``.
Each rank's batch is made by its ``num_workers`` loader workers together: worker ``v`` makes a
fixed *slice* of every batch, ``worker_sizes(batch_size, num_workers)[v]`` samples (the sizes
differ by at most one). For task ``t`` with weight ``w_t`` (normalised) the *share* after ``s``
steps is ``s*R*B*w_t`` over all ranks, ``s*B*w_t`` on one rank and ``s*b_v*w_t`` for worker
``v``. :func:`plan_counts` chooses, step by step, how many samples of each task every worker's
slice holds so that, after every step,

* in total, per rank and per worker, ``|count - share| < 1`` (the count is the share rounded
  down or up), and the counts at the last step equal ``epoch_counts`` exactly.

The three levels form a tree (workers inside ranks inside the total) and advance together, one
step at a time; that is why slices and not whole batches per worker. With whole batches a rank's
steps cycle through its workers, the rank's prefixes and the workers' interleave, and no fast
rule we found keeps both within 1 (``docs/training.md``, "Mixtures at every step").

How: at each step every (worker, task) pair may take the floor or the ceiling of its next share,
and the sums per (rank, task) and per task must do the same. That is a small bounded flow (worker
slices of fixed size -> rank-task -> task) solved by successive shortest paths in preference
order (the worker that lags most first, then the earliest deadline). A greedy step can paint
itself into a corner a few steps later; Hall-type checks on every rank, worker and the total
refuse steps that surely do (a worker that fails its check gets its optional samples moved to
its siblings), and the plan backs up a few steps and replans them earliest-deadline-first when it
still meets a dead end. A step that stays a dead end is replanned with a window of steps around
it as one small exact integer program (:func:`_exact_window`). Should all that fail, the plan is
made again with other tie-breaks, and bounds are loosened for single steps (worker first, then
rank, then total) so a plan always exists; ``PlanStats`` counts what happened and the tests
require no loosened step. ``benchmarks/mixture_discrepancy.py`` measures all of this over random
shapes; with one worker per rank the rules are those of the plan before slices, and the plans
are the same unless an exact repair was needed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

_LEAF_RETRIES = 4  # a step whose flow corners a worker is re-solved this often with that worker's choices penalised
_CHEAP_TRIES = 4  # dead ends at one step met by backing up a few steps before an exact repair is tried
_MAX_REPAIR_COUNTS = 6000  # counts (steps x workers x tasks) one exact repair may replan
_NODE_LIMIT = 200  # branch-and-bound nodes per repair (a node limit, not a time limit, keeps ranks in step)
_EPS = 1e-9  # shares are float products; a share within 1e-9 of an integer counts as that integer


@dataclass
class PlanStats:
    """How hard the plan was to make: steps replanned by backing up, windows replanned exactly,
    plans restarted with other tie-breaks or a looser worker bound, steps whose worker bound had to
    be loosened, and steps whose rank or total bound had to be loosened (both should stay 0)."""

    backtracks: int = 0
    repairs: int = 0
    restarts: int = 0
    worker_widened: int = 0
    widened: int = 0


def worker_sizes(batch_size: int, num_workers: int) -> np.ndarray:
    """Samples each of ``num_workers`` loader workers adds to every batch (sizes differ by <= 1)."""
    k = max(1, num_workers)
    return np.array([batch_size // k + (v < batch_size % k) for v in range(k)], dtype=np.int64)


def _floor(x: np.ndarray) -> np.ndarray:
    return np.floor(x + _EPS).astype(np.int64)


def _ceil(x: np.ndarray) -> np.ndarray:
    return np.ceil(x - _EPS).astype(np.int64)


def plan_counts(weights: np.ndarray, final: np.ndarray, steps: int, world_size: int, batch_size: int,
                num_workers: int = 1, tiebreak: np.ndarray | None = None,
                stats: PlanStats | None = None) -> np.ndarray:
    """Counts ``[steps, world_size, num_workers, n_tasks]`` meeting the bounds above.

    Worker ``v``'s counts in a step sum to ``worker_sizes(batch_size, num_workers)[v]``.
    ``weights`` are normalised task weights, ``final`` the exact totals the last step must reach
    (``epoch_counts``). ``tiebreak`` ([steps, world_size, num_workers, n_tasks] floats) orders
    otherwise equal choices, so a seed can vary the plan without changing its bounds.
    """
    stats = stats if stats is not None else PlanStats()
    k = max(1, num_workers)
    n_tasks = len(weights)
    if tiebreak is None:
        tiebreak = np.zeros((steps, world_size, k, n_tasks))
    tiebreak = np.asarray(tiebreak, dtype=np.float64).reshape(steps, world_size * k, n_tasks)
    # The rank and total bounds come first. A plan that had to loosen a bound is made again with
    # other tie-breaks, then with more room for the workers (their bound is what usually corners a
    # greedy step). The best plan wins (fewest loosened rank/total steps, then the smallest worker
    # error); the first one almost always does.
    ties = (tiebreak, -tiebreak, tiebreak[::-1].copy())
    tries = [(0, t) for t in ties] + [(slack, t) for slack in (1, steps * batch_size) for t in ties]
    best = None
    for attempt, (worker_slack, tie) in enumerate(tries):
        planner = _Planner(np.asarray(weights, dtype=np.float64), np.asarray(final, dtype=np.int64), steps,
                           world_size, batch_size, k, tie, worker_slack)
        counts = planner.run().reshape(steps, world_size, k, n_tasks)
        stats.restarts += attempt > 0
        stats.backtracks += planner.backtracks
        stats.repairs += planner.repairs
        score = (planner.widened, prefix_errors(counts, weights)[2])
        if best is None or score < best[0]:
            best = (score, planner, counts)
        if score[0] == 0 and score[1] < 1:
            break
    _, planner, counts = best
    stats.worker_widened += planner.worker_widened
    stats.widened += planner.widened
    return counts


class _Planner:
    """State of one plan: running counts per worker (a *leaf*: rank ``l // K``, worker ``l % K``),
    per rank and in total, plus the history of steps."""

    def __init__(self, w: np.ndarray, final: np.ndarray, steps: int, ranks: int, batch: int,
                 workers: int, tiebreak: np.ndarray, worker_slack: int):
        self.w, self.final, self.steps, self.R, self.B, self.K = w, final, steps, ranks, batch, workers
        self.T = len(w)
        self.b = np.tile(worker_sizes(batch, workers), ranks)  # slice size of every leaf
        self.tiebreak = tiebreak
        self.leaf = np.zeros((ranks * workers, self.T), dtype=np.int64)
        self.rank = np.zeros((ranks, self.T), dtype=np.int64)
        self.total = np.zeros(self.T, dtype=np.int64)
        self.history: list[np.ndarray] = []
        self.slack = (worker_slack, 0, 0)  # how far past floor/ceiling each level may go
        self.backtracks = self.worker_widened = self.widened = self.repairs = 0

    def _apply(self, n: np.ndarray, sign: int) -> None:
        self.leaf += sign * n
        self.rank += sign * n.reshape(self.R, self.K, self.T).sum(axis=1)
        self.total += sign * n.sum(axis=0)

    def run(self) -> np.ndarray:
        budget = 20 + self.steps // 4
        safe_until, s = -1, 0
        stuck_at: dict[int, int] = {}  # dead ends met at each step
        repaired: set[int] = set()
        while s < self.steps:
            n = self._step(s, safe=s <= safe_until, widen=self.slack)
            if n is None and self.backtracks < budget and self.history:
                stuck_at[s] = stuck_at.get(s, 0) + 1
                if stuck_at[s] > _CHEAP_TRIES and s not in repaired:
                    repaired.add(s)
                    resumed = self._repair(s)
                    if resumed is not None:
                        s = resumed
                        continue
                self.backtracks += 1
                depth = min(len(self.history), 1 + self.backtracks % 4)
                for _ in range(depth):  # back up and replan earliest-deadline-first
                    s -= 1
                    self._apply(self.history.pop(), -1)
                safe_until = s + depth
                continue
            if n is None:
                n = self._widened_step(s)
            self._apply(n, +1)
            self.history.append(n)
            s += 1
        return np.stack(self.history) if self.history else np.zeros((0, self.R * self.K, self.T), dtype=np.int64)

    def _repair(self, s: int) -> int | None:
        """At a step that stays a dead end: replan the last steps and the next ones exactly, as one
        small integer program. Returns the step to go on from, or None (history unchanged)."""
        for scale in (1, 2, 4, 8):
            back = min(len(self.history), 4 * scale)
            length = min(back + 8 * scale, self.steps - (s - back))
            if length * self.R * self.K * self.T > _MAX_REPAIR_COUNTS:
                break
            undone = [self.history.pop() for _ in range(back)]
            for n in undone:
                self._apply(n, -1)
            block = _exact_window(self, s - back, length)
            if block is not None:
                self.repairs += 1
                for n in block:
                    self._apply(n, +1)
                    self.history.append(n)
                return s - back + length
            for n in undone[::-1]:
                self._apply(n, +1)
                self.history.append(n)
        return None

    # ------------------------------------------------------------ one step

    def _step(self, s: int, safe: bool, widen: tuple[int, int, int]) -> np.ndarray | None:
        w, K = self.w, self.K
        leaf_share = (s + 1) * self.b[:, None] * w[None, :]
        lo = np.maximum(_floor(leaf_share) - widen[0] - self.leaf, 0)
        hi = np.minimum(_ceil(leaf_share) + widen[0] - self.leaf, self.b[:, None])
        rank_share = (s + 1) * self.B * w
        r_lo = _floor(rank_share)[None, :] - widen[1] - self.rank  # [R, T] this step's rank sums
        r_hi = _ceil(rank_share)[None, :] + widen[1] - self.rank
        if K == 1:  # a rank is its one worker: its bounds apply to the leaf directly
            lo, hi = np.maximum(lo, r_lo), np.minimum(hi, r_hi)
        if s == self.steps - 1:
            t_lo = t_hi = self.final - self.total
        else:
            total_share = (s + 1) * self.R * self.B * w
            t_lo = _floor(total_share) - widen[2] - self.total
            t_hi = np.minimum(_ceil(total_share) + widen[2], self.final) - self.total
        if (lo > hi).any():
            return None
        need = self.b - lo.sum(axis=1)  # extra samples each leaf still takes
        room = hi - lo
        base = lo.sum(axis=0)
        col_lo, col_hi = np.maximum(t_lo - base, 0), t_hi - base
        groups = None
        if K > 1:
            in_rank = lo.reshape(self.R, K, self.T).sum(axis=1)
            groups = (np.maximum(r_lo - in_rank, 0), r_hi - in_rank)
            if (groups[1] < groups[0]).any():
                return None
        if (need < 0).any() or (need > room.sum(axis=1)).any() or (col_hi < col_lo).any():
            return None
        lag = self.leaf + lo - leaf_share  # < 0: the worker is behind on the task
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = self.b[:, None] * w[None, :]
            deadline = np.where(rate > 0, np.ceil((self.leaf + lo + 1) / rate - _EPS) - s, 1e6)
        deadline = np.minimum(deadline, 1e6)  # steps until the leaf's share needs one more of the task
        cost = deadline + 1e-3 * lag if safe else 1e3 * np.clip(lag, -3.0, 3.0) + deadline
        cost = cost + 1e-6 * self.tiebreak[s]
        for _ in range(_LEAF_RETRIES + 1):
            take = _fill(cost, need, col_lo, col_hi, room, K, groups)
            if take is None:
                return None
            n = lo + take
            if not self._hall_ok(s, n):
                break
            stuck = [] if widen[0] else self._stuck_leaves(s, n)
            if not stuck:
                return n
            # a worker cornered itself: move its optional samples of this step to its siblings
            for x in stuck:
                cost[x] += 1e4 * (take[x] > 0)
        return None if safe else self._step(s, safe=True, widen=widen)

    def _hall_ok(self, s: int, n: np.ndarray) -> bool:
        """Can every rank and the total still meet its floors after this step (Hall's condition)?

        An entity is *ahead* on a task when its count is the ceiling of its share. A task it is
        ahead on needs nothing until its share's floor next rises; if more such tasks than the
        entity's spare places are still waiting ``h`` steps on, some floor must be missed.
        """
        rank = self.rank + n.reshape(self.R, self.K, self.T).sum(axis=1)
        total = self.total + n.sum(axis=0)
        return all(_hall(rank[r], s + 1, self.B * self.w, self.B, self.steps) for r in range(self.R)) and \
            _hall(total, s + 1, self.R * self.B * self.w, self.R * self.B, self.steps)

    def _stuck_leaves(self, s: int, n: np.ndarray) -> list[int]:
        """Workers that fail Hall's condition after this step (none when a rank is one worker)."""
        if self.K == 1:
            return []
        leaf = self.leaf + n
        return [x for x in range(len(leaf)) if not _hall(leaf[x], s + 1, self.b[x] * self.w, int(self.b[x]), self.steps)]

    def _widened_step(self, s: int) -> np.ndarray:
        """Last resort: loosen the worker, then the rank, then the total bound until a step exists."""
        big = self.steps * self.R * self.B  # wide enough to lift a bound altogether
        for widen in ((self.slack[0] + 1, 0, 0), (big, 0, 0), (big, 1, 0), (big, big, 0), (big, big, 1), (big, big, big)):
            n = self._step(s, safe=True, widen=widen)
            if n is not None:
                if widen[1] or widen[2]:
                    self.widened += 1
                else:
                    self.worker_widened += 1
                return n
        raise AssertionError("no step fits even with open bounds; the final counts are inconsistent")


def _exact_window(plan: _Planner, start: int, length: int) -> list[np.ndarray] | None:
    """Counts for the steps ``[start, start+length)`` meeting every bound (floor or ceiling of each
    share, per worker, rank and total), continuing ``plan``'s current counts; None if none found.

    A feasibility integer program over each worker's *running* counts after every step (HiGHS via
    :func:`scipy.optimize.milp`; deterministic, so every rank finds the same plan): a worker's
    running counts lie in its band and sum to its samples so far, never decrease, and their sums
    over a rank's workers and over all workers lie in the rank's and the total's bands.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    L, T, R, K, h = len(plan.b), plan.T, plan.R, plan.K, length
    ids = np.arange(h * L * T).reshape(h, L, T)
    step = start + 1 + np.arange(h)  # steps done after each window step
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    coef: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []

    def constrain(groups: np.ndarray, low: np.ndarray, high: np.ndarray, sign: np.ndarray | None = None) -> None:
        """One row per leading index of ``groups`` ([rows, members] variable ids): low <= sum <= high."""
        first = sum(len(x) for x in lo)
        n_rows, members = groups.shape
        rows.append(np.repeat(first + np.arange(n_rows), members))
        cols.append(groups.ravel())
        coef.append(np.ones(groups.size) if sign is None else np.tile(sign, n_rows))
        lo.append(np.asarray(low, dtype=np.float64).ravel())
        hi.append(np.asarray(high, dtype=np.float64).ravel())

    # a worker's running counts add up to its samples so far
    sums = (step[:, None] * plan.b[None, :]).ravel()
    constrain(ids.reshape(h * L, T), sums, sums)
    # running counts never decrease (after the window's first step)
    pairs = np.stack([ids[1:], ids[:-1]], axis=-1).reshape(-1, 2)
    constrain(pairs, np.zeros(len(pairs)), np.full(len(pairs), np.inf), sign=np.array([1.0, -1.0]))
    # rank and total bands
    share = step[:, None] * plan.B * plan.w[None, :]
    by_rank = ids.reshape(h, R, K, T).transpose(0, 1, 3, 2).reshape(h * R * T, K)
    constrain(by_rank, np.repeat(_floor(share)[:, None, :], R, axis=1), np.repeat(_ceil(share)[:, None, :], R, axis=1))
    share = step[:, None] * plan.R * plan.B * plan.w[None, :]
    t_lo, t_hi = _floor(share), np.minimum(_ceil(share), plan.final[None, :])
    if step[-1] == plan.steps:
        t_lo[-1] = t_hi[-1] = plan.final
    constrain(ids.transpose(0, 2, 1).reshape(h * T, L), t_lo, t_hi)
    # variable bounds: each worker's band, and no lower than where it stands now
    share = step[:, None, None] * plan.b[None, :, None] * plan.w[None, None, :]
    lower = np.maximum(_floor(share), plan.leaf[None]).astype(np.float64).ravel()
    upper = _ceil(share).astype(np.float64).ravel()
    if (lower > upper).any():
        return None
    a = coo_matrix((np.concatenate(coef), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(sum(len(x) for x in lo), ids.size)).tocsr()
    result = milp(np.zeros(ids.size), constraints=LinearConstraint(a, np.concatenate(lo), np.concatenate(hi)),
                  integrality=np.ones(ids.size), bounds=Bounds(lower, upper), options={"node_limit": _NODE_LIMIT})
    if result.x is None:
        return None
    running = np.round(result.x).astype(np.int64).reshape(h, L, T)
    counts = np.diff(np.concatenate([plan.leaf[None], running]), axis=0)
    if (counts < 0).any() or (counts.sum(axis=2) != plan.b[None, :]).any():
        return None
    return list(counts)


def _hall(counts: np.ndarray, k: int, rate: np.ndarray, cap: int, last: int) -> bool:
    """Hall's condition for one entity with ``counts`` after ``k`` steps of ``cap`` samples at
    per-step shares ``rate``: for every horizon h (up to step ``last``), the tasks it is ahead on
    whose floor does not rise within h steps must fit in the places above the floors then."""
    floor_now = _floor(k * rate)
    ahead = (counts > floor_now) & (rate > 0)
    if not ahead.any():
        return True
    rise = np.ceil((floor_now[ahead] + 1) / rate[ahead] - _EPS) - k  # steps until each floor rises
    horizon = int(min(rise.max(), last - k + 1))
    if horizon <= 1:
        return True
    h = np.arange(1, horizon)
    spare = (k + h) * cap - _floor((k + h)[:, None] * rate[None, :]).sum(axis=1)
    waiting = (rise[None, :] > h[:, None]).sum(axis=1)
    return bool((waiting <= spare).all())


def _fill(cost: np.ndarray, need: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray, room: np.ndarray,
          workers: int = 1, groups: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
    """Cheapest extra counts ``0 <= x <= room`` with row sums ``need`` and column sums in ``[col_lo, col_hi]``.

    Rows are leaves (workers); with ``groups`` = (lo, hi) [ranks, tasks], the sums of each rank's
    ``workers`` consecutive rows per task must also lie in [lo, hi]. A min-cost flow (source ->
    leaves -> rank-task -> tasks -> sink, successive shortest paths): the lower bounds are arcs with
    a large negative cost, so they fill first. None if infeasible.
    """
    L, T = room.shape
    big = 10**15  # integer costs (micro-units): exact sums, so no rounding can fake a negative cycle
    src, sink = L + T, L + T + 1
    n_nodes = L + T + 2 + (0 if groups is None else (L // workers) * T)
    head: list[int] = []
    cap: list[int] = []
    arc_cost: list[int] = []
    out: list[list[int]] = [[] for _ in range(n_nodes)]

    def arc(a: int, b: int, c: int, k: int) -> int:
        for x, y, cc, kk in ((a, b, c, k), (b, a, 0, -k)):
            out[x].append(len(head))
            head.append(y)
            cap.append(cc)
            arc_cost.append(kk)
        return len(head) - 2

    def bounded(a: int, b: int, low: int, high: int) -> None:
        if low > 0:
            arc(a, b, low, -big)
        if high > low:
            arc(a, b, high - low, 0)

    def mid(leaf: int, t: int) -> int:  # where a leaf's task arc goes: its rank-task node, or the task
        return L + t if groups is None else L + T + 2 + (leaf // workers) * T + t

    for x in range(L):
        if need[x]:
            arc(src, x, int(need[x]), 0)
    pair = {}
    for x in range(L):
        for t in range(T):
            if room[x, t] > 0:
                pair[x, t] = arc(x, mid(x, t), int(room[x, t]), int(round(float(cost[x, t]) * 1e6)))
    if groups is not None:
        g_lo, g_hi = groups
        for r in range(L // workers):
            for t in range(T):
                bounded(mid(r * workers, t), L + t, int(g_lo[r, t]), int(g_hi[r, t]))
    for t in range(T):
        bounded(L + t, sink, int(col_lo[t]), int(col_hi[t]))
    for _ in range(int(need.sum())):
        dist: list[float] = [math.inf] * n_nodes
        via = [-1] * n_nodes
        dist[src] = 0
        queue, queued = deque([src]), [False] * n_nodes
        while queue:  # shortest path with negative arcs (SPFA); the residual graph has no negative cycle
            x = queue.popleft()
            queued[x] = False
            for e in out[x]:
                if cap[e] > 0 and dist[x] + arc_cost[e] < dist[head[e]]:
                    dist[head[e]] = dist[x] + arc_cost[e]
                    via[head[e]] = e
                    if not queued[head[e]]:
                        queued[head[e]] = True
                        queue.append(head[e])
        if via[sink] < 0:
            return None
        x = sink
        while x != src:
            e = via[x]
            cap[e] -= 1
            cap[e ^ 1] += 1
            x = head[e ^ 1]
    take = np.zeros((L, T), dtype=np.int64)
    for (x, t), e in pair.items():
        take[x, t] = room[x, t] - cap[e]
    cols = take.sum(axis=0)
    if (cols < col_lo).any() or (cols > col_hi).any() or (take.sum(axis=1) != need).any():
        return None
    if groups is not None:
        sums = take.reshape(-1, workers, T).sum(axis=1)
        if (sums < groups[0]).any() or (sums > groups[1]).any():
            return None
    return take


def prefix_errors(counts: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """Largest ``|count - share|`` over every prefix: (total, per rank, per worker).

    ``counts`` is ``[steps, world_size, num_workers, n_tasks]`` per-slice task counts (or
    ``[steps, world_size, n_tasks]`` for one worker per rank); shares use ``weights`` (normalised)
    and each worker's slice size.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim == 3:
        counts = counts[:, :, None, :]
    if counts.shape[0] == 0:
        return 0.0, 0.0, 0.0
    w = np.asarray(weights, dtype=np.float64)
    sizes = counts[0].sum(axis=2)  # [ranks, workers] slice sizes
    cum = np.cumsum(counts, axis=0)
    s = np.arange(1, counts.shape[0] + 1, dtype=np.float64)
    per_worker = float(np.abs(cum - s[:, None, None, None] * sizes[None, :, :, None] * w).max())
    rank_sizes = sizes.sum(axis=1)
    per_rank = float(np.abs(cum.sum(axis=2) - s[:, None, None] * rank_sizes[None, :, None] * w).max())
    total = float(np.abs(cum.sum(axis=(1, 2)) - s[:, None] * rank_sizes.sum() * w).max())
    return total, per_rank, per_worker
