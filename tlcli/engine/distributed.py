"""torchrun / DistributedDataParallel. One process per device; only rank 0 writes files."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on the CPU, nccl on GPUs.

    The group is formed on first use and kept until the process exits, however many fits the command runs
    (seeds, pseudo-label rounds). Forming it a second time is not safe: torchrun's store outlives a group, a
    new default group reuses the old one's store keys, and a rank can read the other's stale gloo address
    ("Connection refused", seen in CI with `finetune --seeds` under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if device_type == "cuda":  # NCCL needs each process bound to its own GPU before the group forms
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        atexit.register(_end_group)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _end_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    if not info.enabled:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return dict(zip(keys, tensor.tolist()))


def sum_across_ranks(tensor: torch.Tensor, info: DistInfo, device: torch.device) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over all ranks, on the CPU (rows each rank filled in, zeros
    elsewhere, become every rank's full table). NCCL reduces only device tensors, hence ``device``."""
    if not info.enabled:
        return tensor
    moved = tensor.to(device)
    dist.all_reduce(moved)
    return moved.cpu()


def broadcast_object(value, info: DistInfo):
    """Rank 0's ``value`` on every rank (a decision all ranks must share, e.g. which images a round keeps)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when it is true on one (so all ranks stop together)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0])
    dist.all_reduce(tensor)
    return bool(tensor.item())


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
