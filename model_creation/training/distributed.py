"""Single process, or one process per GPU (or CPU worker) started by torchrun: found from RANK / WORLD_SIZE.

``torchrun --nproc_per_node=G manage.py train_model ...`` sets RANK, WORLD_SIZE and LOCAL_RANK (and the rendezvous
address); each process then trains on its share of every epoch (DistributedSampler) and DistributedDataParallel
averages the gradients. NCCL on GPUs, gloo on CPUs. Only rank 0 writes files and prints progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ml_app.detection.model_loading import resolve_device


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (a list of one without torchrun)."""
        if not self.enabled:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str = "auto") -> Distributed:
    """Join the process group when torchrun started this process; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank if world_size > 1 else (chosen.index or 0))
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(rank, world_size, local_rank, chosen)
