"""A probe: fixed training crops per task on which an adaptive balance measures the model's loss.

Training losses come from different samples at every step, so their change between two balance
updates mixes learning with sampling noise. A probe holds the same few crops per task for the
whole run (spread evenly over each task's training samples, one seeded crop each), so the change
of its loss is the model's. Every rank builds the same probe from the manifest alone; at each
balance update each rank scores every ``world_size``-th crop and the sums are all-reduced, so all
ranks get bit-identical numbers.

The crops are training samples (the stream has no way to hold samples out): the probe measures
fit, not generalisation. Controllers use it for the *direction and speed* of change, where a fixed
set is what removes the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anyir.data.augment import PairedAugment, to_batch
from anyir.data.balance import BalanceError
from anyir.data.reader import ShardReader
from anyir.data.samples import decode_sample
from anyir.data.shardset import ShardSet
from anyir.train.distributed import DistEnv, all_reduce_sum
from anyir.train.losses import per_sample_loss

PROBE_BATCH = 16  # crops per forward pass


def spread_positions(total: int, n: int) -> list[int]:
    """``n`` sample positions spread evenly over ``total`` (all of them when ``n >= total``)."""
    if n >= total:
        return list(range(total))
    return [(2 * i + 1) * total // (2 * n) for i in range(n)]


@dataclass
class Probe:
    """Degraded and clean crops per task (``[n, 3, crop, crop]`` tensors on the CPU)."""

    lq: dict[str, torch.Tensor]
    gt: dict[str, torch.Tensor]
    fft_weight: float

    @classmethod
    def build(cls, shards: ShardSet, tasks: list[str], per_task: int, crop: int, fft_weight: float,
              seed: int, purpose: str = "probe") -> Probe:
        """``per_task`` crops per task, from samples spread over its training shards, cropped and
        flipped by the seeded training augmentation under the key ``purpose``."""
        augment, reader = PairedAugment(crop), ShardReader(cache_size=1)
        lq: dict[str, torch.Tensor] = {}
        gt: dict[str, torch.Tensor] = {}
        for task in sorted(tasks):
            refs = shards.refs("train", task)
            offsets = [(ref, i) for ref in refs for i in range(ref.samples)]
            if not offsets:
                raise BalanceError(f"balance probe: task {task!r} has no training samples in {shards.root}")
            pairs = []
            for position in spread_positions(len(offsets), per_task):
                ref, i = offsets[position]
                sample = decode_sample(reader.shard(ref)[i])
                sigma = (sample.meta or {}).get("online_noise_sigma")
                pairs.append(augment(sample.gt, sample.lq, sigma, seed, purpose, sample.key))
            lq[task], gt[task] = to_batch([p[0] for p in pairs]), to_batch([p[1] for p in pairs])
        return cls(lq, gt, fft_weight)

    @property
    def tasks(self) -> list[str]:
        """The probed tasks, sorted."""
        return sorted(self.lq)

    def identity_losses(self) -> dict[str, float]:
        """Mean loss of the identity (output = the degraded crop) per task: the scale of each task's error."""
        return {t: max(float(per_sample_loss(self.lq[t], self.gt[t], self.fft_weight).mean()), 1e-8)
                for t in self.tasks}

    @torch.no_grad()
    def losses(self, model: torch.nn.Module, env: DistEnv, autocast_dtype: torch.dtype | None = None) -> dict[str, float]:
        """Mean loss of ``model`` per task on the probe; collective (every rank must call it)."""
        items = [(k, t, i) for k, t in enumerate(self.tasks) for i in range(len(self.lq[t]))]
        mine = items[env.rank::env.world_size]
        sums = torch.zeros(2 * len(self.tasks), dtype=torch.float64, device=env.device)
        for first in range(0, len(mine), PROBE_BATCH):
            chunk = mine[first:first + PROBE_BATCH]
            lq = torch.stack([self.lq[t][i] for _, t, i in chunk]).to(env.device)
            gt = torch.stack([self.gt[t][i] for _, t, i in chunk]).to(env.device)
            with torch.autocast(env.device.type, dtype=autocast_dtype or torch.float32,
                                enabled=autocast_dtype is not None):
                pred = model(lq)
            values = per_sample_loss(pred, gt, self.fft_weight).double()
            ids = torch.tensor([k for k, _, _ in chunk], device=env.device)
            sums.index_add_(0, ids, values)
            sums.index_add_(0, ids + len(self.tasks), torch.ones_like(values))
        total = all_reduce_sum(sums, env)
        n = len(self.tasks)
        return {t: float(total[k] / total[n + k]) for k, t in enumerate(self.tasks)}
