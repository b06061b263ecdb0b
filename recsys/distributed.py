"""Data-parallel training across processes with torch.distributed, launched by torchrun.

torchrun starts one process per worker and sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; process_group()
joins them (gloo for CPU tensors, nccl for GPU ones: recsys.device) and recsys.train.fit then splits each
optimisation step's loss across the ranks while DistributedDataParallel averages the gradients. On one process it
does nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from recsys.device import backend_for, resolve_device
from recsys.errors import TrainingError

log = logging.getLogger(__name__)


def launched_distributed() -> bool:
    """Whether this process is one of several started by torchrun (or another launcher setting WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torch.distributed group (world 1 when training alone)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Ranks:
        if dist.is_available() and dist.is_initialized():
            return cls(rank=dist.get_rank(), world=dist.get_world_size())
        return cls()

    def agree(self, *values: float) -> list[float]:
        """Rank 0's values on every rank, so that all ranks take the same stop decisions."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.broadcast(t, src=0)
        return t.tolist()

    def total(self, value: float) -> float:
        """The sum of value over all ranks."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return float(t)


def _collective_device() -> torch.device:
    """Where the group's collectives take their tensors: nccl only moves GPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextmanager
def process_group(device: str = "cpu", timeout_s: float = 1800.0) -> Iterator[int]:
    """Join the torchrun group for the duration of the block and yield this process's rank (0 alone). device is
    what training will run on (recsys.device): GPUs talk over nccl, each rank on the GPU of its LOCAL_RANK."""
    if not launched_distributed() or (dist.is_available() and dist.is_initialized()):
        yield Ranks.current().rank
        return
    if not dist.is_available():  # pragma: no cover - every PyPI wheel has torch.distributed
        raise TrainingError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    where = resolve_device(device)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    try:
        dist.init_process_group(backend=backend_for(where), timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(f"could not join the torchrun process group ({exc})") from exc
    log.info("rank %d of %d joined the process group", dist.get_rank(), dist.get_world_size())
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()
