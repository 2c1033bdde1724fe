"""Who am I in a distributed run: rank, world size and device, from torchrun's or SLURM's env.

Helpers here take the :class:`DistInfo` explicitly (no module-level rank globals), and are no-ops
in a single-process run, so the loop reads the same with one process or many.

Launch (see README): ``torchrun --nproc-per-node 8 -m jooci.cli pretrain ...`` on one node;
``torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 ...`` on
several; under SLURM, ``srun`` one torchrun per node with the same rendezvous endpoint, or
``srun --ntasks-per-node 8 python -m jooci.cli ...`` with MASTER_ADDR/MASTER_PORT exported (the
SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS variables are read when torchrun's are absent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


class RankFailed(RuntimeError):
    """Another rank failed a step every rank takes part in (that rank's log names the problem)."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's variables, else SLURM's, else (0, 0, 1)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"])
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1 and "MASTER_ADDR" in env:
        return int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), int(env["SLURM_NTASKS"])
    return 0, 0, 1


def init_distributed(device: str = "auto", timeout: float | None = None) -> DistInfo:
    """Join the process group if launched distributed (gloo on CPU, NCCL on GPU) and pick the device.

    Args:
        device: "auto" (this rank's GPU if there is one, else CPU), "cpu" or "cuda".
        timeout: seconds a collective may wait for the other ranks before it fails (None:
            PyTorch's default, 10 minutes for NCCL); ``run.dist_timeout`` in a config.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"the process-group timeout must be > 0 seconds, got {timeout}")
    rank, local_rank, world = env_info()
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("WORLD_SIZE", str(world))
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None,
                                timeout=None if timeout is None else timedelta(seconds=timeout))
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over ranks in place (no-op in one process)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average ``t`` over ranks in place (no-op in one process)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= info.world_size
    return t


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is True on any: how a NaN on one rank is skipped by all."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_ranks_succeed(ok: bool, info: DistInfo) -> bool:
    """True on every rank if ``ok`` is True on all of them (a failed rank reports rather than
    leaving the others waiting in the next collective until the timeout)."""
    return not any_rank(not ok, info)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0 (ranks may hold different row counts) whose backward sums every
    rank's gradient for this rank's rows: a loss computed identically on every rank from the
    gathered rows then trains, after DDP's averaging, as the same loss on one process holding the
    whole batch (3D-Speaker's RDINO gathers its regulariser's inputs the same way)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        counts = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
        dist.all_gather(counts, torch.tensor([x.shape[0]], device=x.device))
        rows = [int(c) for c in counts]
        width = max(rows)
        padded = torch.zeros((width, *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[:x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in rows]
        dist.all_gather(parts, padded)
        ctx.rows, ctx.width = rows, width
        return torch.cat([p[:n] for p, n in zip(parts, rows)], dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, rows = dist.get_rank(), ctx.rows
        padded = grad.new_zeros((len(rows), ctx.width, *grad.shape[1:]))
        for r, part in enumerate(grad.split(rows)):
            padded[r, :rows[r]] = part
        dist.all_reduce(padded, op=dist.ReduceOp.SUM)
        return padded[rank, :rows[rank]]


def all_gather_rows(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``t`` (B, ...) of every rank concatenated in rank order, with gradient (``t`` itself in one
    process); B may differ between ranks."""
    if not info.distributed:
        return t
    return _GatherRows.apply(t)
