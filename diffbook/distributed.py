"""Multi-process training with ``torchrun``: join the process group, know this process's rank, leave it.

:func:`diffbook.train.train` wraps the network in ``DistributedDataParallel`` when a group was joined; only
rank 0 prints, plots and writes checkpoints (:func:`is_main_process`).

Reference: S. Li et al., *PyTorch Distributed: Experiences on Accelerating Data Parallel Training* (VLDB 2020).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from diffbook.device import pick_device

__all__ = ["rank_and_world_size", "is_main_process", "init_distributed", "close_distributed"]


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` when ``torch.distributed`` is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 and in a single process: the one that prints, plots and writes files."""
    return rank_and_world_size()[0] == 0


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` describes, and return this process's device.

    ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. With
    CUDA each process takes the GPU ``cuda:LOCAL_RANK`` and the backend is NCCL; without, it is Gloo on the
    CPU. Started without ``torchrun`` (no ``WORLD_SIZE``) this does nothing and returns :func:`pick_device`,
    so one script runs both ways. Pair it with :func:`close_distributed`.

    Args:
        backend: override the backend (``"nccl"`` or ``"gloo"``).
    """
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"backend must be a string such as 'nccl' or 'gloo', or None, got {type(backend).__name__}")
    if "WORLD_SIZE" not in os.environ:
        return pick_device()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if backend is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device


def close_distributed() -> None:
    """Leave the process group, if one was joined (call it once at the end of a ``torchrun`` script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
