"""The DDP spine (nanoGPT-style): rank and world from torchrun's environment, one `is_main` flag for I/O.

One process without torchrun is world size 1 with no process group. Under torchrun the backend is
NCCL when the run uses CUDA and gloo on CPU.
"""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 does all file and console output."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is up (launched by torchrun)."""
        return dist.is_available() and dist.is_initialized()


def setup_distributed(device: str = "auto", timeout_s: float = 600.0) -> DistEnv:
    """Read RANK / WORLD_SIZE / LOCAL_RANK set by torchrun, pick the device, start the process group."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA GPU; use --device cpu")
    launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    if launched:
        _exit_with_launcher()
    rank = int(os.environ.get("RANK", 0)) if launched else 0
    world = int(os.environ.get("WORLD_SIZE", 1)) if launched else 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if launched else 0
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if launched and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        timeout = timedelta(seconds=timeout_s)
        store = _attempt_store(rank, world, timeout)
        if store is None:
            dist.init_process_group(backend=backend, timeout=timeout)
        else:
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world, timeout=timeout)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def _exit_with_launcher() -> None:
    """Under torchrun's agent, end this rank when the agent dies, even by SIGKILL (Linux: SIGTERM on
    the parent's death). An orphaned rank would train on alone and hold the run folder's lock, so
    rerunning the killed command could not resume the run."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the run-folder lock still stops a second writer
        return
    if os.getppid() != parent:  # the agent died before prctl took effect
        os._exit(1)


def _attempt_store(rank: int, world: int, timeout: timedelta) -> dist.Store | None:
    """Under torchrun, the rendezvous store with keys prefixed by the restart attempt.

    torchrun (``--max-restarts``) keeps one store across restarts, so a restarted group would read
    keys the failed attempt left, e.g. the gloo address of a killed rank, and try to connect to a
    port nobody listens on (seen with torch 2.14: "Gloo connectFullMesh failed ... Connection
    refused", or a hang). None outside torchrun (plain ``env://`` initialisation).
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        return None
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":  # the launcher hosts the store
        store = dist.TCPStore(host, port, world, is_master=False, timeout=timeout)
    else:
        store = dist.TCPStore(host, port, world, is_master=rank == 0, timeout=timeout, multi_tenant=True)
    return dist.PrefixStore(f"anyir/attempt-{attempt}", store)


def teardown_distributed() -> None:
    """Leave the process group (idempotent)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a tensor over ranks (in place; a no-op in a single process) and return it."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_ints(value: int, env: DistEnv) -> list[int]:
    """Every rank's value of an integer, in rank order (used to check ranks agree)."""
    if not env.distributed:
        return [value]
    mine = torch.tensor([value], dtype=torch.int64, device=env.device)
    out = [torch.zeros_like(mine) for _ in range(env.world_size)]
    dist.all_gather(out, mine)
    return [int(t.item()) for t in out]


def gather_objects(obj: object, env: DistEnv) -> list[object]:
    """Every rank's picklable object, in rank order (for per-rank loader / RNG state in checkpoints)."""
    if not env.distributed:
        return [obj]
    out: list[object] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env.distributed:
        dist.barrier()
