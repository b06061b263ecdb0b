"""Where training runs: CPU tensors, or a CUDA GPU when one is asked for ("cuda") or found ("auto").

One rule for the CLI's --device, the bot's MUSICREC_TRAIN_DEVICE and TrainConfig.device. Under torchrun each rank
takes the GPU of its LOCAL_RANK, and the process group then speaks nccl (GPU tensors) instead of gloo (CPU)."""

from __future__ import annotations

import os

import torch

from recsys.config import DEVICE_NAMES
from recsys.errors import TrainingError


def resolve_device(name: str) -> torch.device:
    """The torch device that `name` means on this machine; "cuda" without a usable GPU is a one-line error."""
    if name not in DEVICE_NAMES:
        raise TrainingError(f"unknown device {name!r}; expected one of {', '.join(DEVICE_NAMES)}")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if name == "cuda":
            raise TrainingError(
                f"device 'cuda' was asked for, but torch {torch.__version__} sees no CUDA GPU on this machine; "
                "use device 'cpu' or 'auto'"
            )
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def backend_for(device: torch.device) -> str:
    """The torch.distributed backend for tensors on `device`: nccl between GPUs, gloo between CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"
