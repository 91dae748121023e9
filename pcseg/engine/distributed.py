"""Multi-process training with torch.distributed, launched by ``torchrun``.

The same code runs single-process (no ``WORLD_SIZE`` in the environment), multi-process on CPUs
(gloo) and multi-GPU / multi-node (nccl).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False     # a process group is joined: launched by torchrun, even as one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """torchrun (torch.distributed.run) sets these for every process it starts."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that torchrun set up (env://: nccl on CUDA, gloo on CPUs), also for
    ``--nproc_per_node 1`` (the same code path as several processes); a no-op when not launched by
    torchrun. On CUDA each process takes the GPU of its LOCAL_RANK first, as NCCL expects."""
    if not launched_by_torchrun():
        return DistInfo()
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, enabled=True)


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of a Python number over all ranks (for logging)."""
    if not info.enabled:
        return value
    # nccl reduces GPU tensors only (the process's own GPU, set in init_distributed)
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
