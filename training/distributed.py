"""Data-parallel training over processes started by torchrun: gloo on CPU, NCCL on GPUs, one or more nodes.

Every rank draws the same global batch from the same seeded generator and trains on its contiguous slice of
it. Losses that compare the rows of a batch with each other see the whole batch through `gather_rows`;
DistributedDataParallel averages the gradients. Rank 0 alone computes what must be one answer for all
(k-means centers, validation) and alone writes files.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")
LEAVE_TIMEOUT = 60  # seconds the ranks wait for each other at exit (stop)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class _GatherRows(torch.autograd.Function):
    """All ranks' rows, in rank order; the gradient goes back to this rank's rows only.

    Valid because every rank computes the same loss from the gathered rows: the sum over ranks of the
    gradients of a row is world_size times the local one, so no collective is needed in backward (and
    DDP's own all-reduce stays the only one there).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, counts: tuple[int, ...]) -> torch.Tensor:
        rank = dist.get_rank()
        ctx.lo, ctx.hi, ctx.world = sum(counts[:rank]), sum(counts[: rank + 1]), len(counts)
        padded = x.new_zeros((max(counts), *x.shape[1:]))  # all_gather needs equal shapes
        padded[: len(x)] = x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad[ctx.lo : ctx.hi] * ctx.world, None


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes; a plain single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """Rows [lo, hi) of an n-row global batch that a rank trains on (contiguous, sizes differ by <= 1)."""
        r = self.rank if rank is None else rank
        return r * n // self.world_size, (r + 1) * n // self.world_size

    def gather_rows(self, x: torch.Tensor, total: int) -> torch.Tensor:
        """This rank's rows (n_r, ...) of a total-row batch -> the whole batch (total, ...), with gradient."""
        if not self.enabled:
            return x
        counts = tuple(hi - lo for lo, hi in (self.bounds(total, r) for r in range(self.world_size)))
        return _GatherRows.apply(x, counts)

    def wrap(self, model: nn.Module, device: str) -> nn.Module:
        """DistributedDataParallel around the model (it averages every parameter's gradient), or the model."""
        if not self.enabled:
            return model
        ids = [torch.device(device).index] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids)

    def on_main(self, fn: Callable[[], T]) -> T:
        """fn() run by rank 0 only, its result handed to every rank (an exception is raised on every rank)."""
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as exc:  # the other ranks would otherwise wait for a result forever
                box[0] = ("error", exc)
        dist.broadcast_object_list(box, src=0)
        status, value = box[0]
        if status == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        x = x.clone()
        dist.all_reduce(x)
        return x

    def all_gather_object(self, obj: T) -> list[T]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def start(device: str) -> tuple[Dist, str]:
    """Join the process group when torchrun started this process -> (place, device of this rank).

    On CUDA each process takes the GPU `cuda:LOCAL_RANK` of its node, whatever `device` named.
    """
    if not launched_by_torchrun():
        return Dist(), device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device.startswith("cuda"):
            device = f"cuda:{local}"
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=torch.device(device))
        else:
            dist.init_process_group("gloo")
        atexit.register(stop)
    elif device.startswith("cuda"):
        device = f"cuda:{local}"
    return Dist(rank, world, local), device


def stop() -> None:
    """Leave the process group at exit, together: on gloo the ranks first wait for each other (at most
    LEAVE_TIMEOUT). Leaving one by one, a rank was now and then aborted by gloo as it exited (std::terminate,
    SIGABRT, seen in tests/training/test_distributed.py on a loaded machine), which fails a finished run;
    destroying the group once every rank is done with it is what PyTorch asks for."""
    if not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        with contextlib.suppress(Exception):  # another rank never comes (it failed): leave anyway
            dist.monitored_barrier(timeout=timedelta(seconds=LEAVE_TIMEOUT))
    dist.destroy_process_group()
