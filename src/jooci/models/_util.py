"""Small tensor helpers shared by the model parts."""

from __future__ import annotations

import torch
from torch import Tensor


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, max_len)`` bool, True at padding (position >= length)."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def check_lengths(x: Tensor, lengths: Tensor | None, name: str = "lengths") -> Tensor:
    """Validate absolute lengths for ``x`` (B, T, ...); None means every item is full length."""
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
    if lengths.dim() != 1 or lengths.shape[0] != x.shape[0]:
        raise ValueError(f"{name} must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > x.shape[1]):
        raise ValueError(f"{name} must lie in [0, {x.shape[1]}], got {lengths.tolist()}")
    return lengths.to(device=x.device, dtype=torch.long)


class _GradMultiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad * ctx.scale, None


def grad_multiply(x: Tensor, scale: float) -> Tensor:
    """Identity forward; gradient multiplied by ``scale`` backward (fairseq ``feature_grad_mult``)."""
    return _GradMultiply.apply(x, scale)
