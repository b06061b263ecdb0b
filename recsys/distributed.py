"""Data-parallel training across processes with torch.distributed, launched by torchrun.

torchrun starts one process per worker and sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; process_group()
joins them (gloo: the training runs on CPU tensors) and recsys.train.fit then splits each optimisation step's
loss across the ranks while DistributedDataParallel averages the gradients. On one process it does nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch.distributed as dist

from recsys.errors import TrainingError

log = logging.getLogger(__name__)


def launched_distributed() -> bool:
    """Whether this process is one of several started by torchrun (or another launcher setting WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@contextmanager
def process_group(timeout_s: float = 1800.0) -> Iterator[int]:
    """Join the torchrun group for the duration of the block and yield this process's rank (0 alone)."""
    if not launched_distributed() or (dist.is_available() and dist.is_initialized()):
        yield rank()
        return
    if not dist.is_available():  # pragma: no cover - every PyPI wheel has torch.distributed
        raise TrainingError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    try:
        dist.init_process_group(backend="gloo", timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(f"could not join the torchrun process group ({exc})") from exc
    log.info("rank %d of %d joined the process group", dist.get_rank(), dist.get_world_size())
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()
