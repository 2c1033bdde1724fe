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


def state_dict_problems(given: dict[str, Tensor], expected: dict[str, Tensor], optional: set[str] = frozenset(),
                        max_named: int = 10) -> list[str]:
    """What keeps ``given`` from loading into a module whose state dict is ``expected``: keys with
    no place, keys missing (except ``optional``), shape mismatches; each list names its keys."""

    def names(keys: list[str]) -> str:
        more = f" ... and {len(keys) - max_named} more" if len(keys) > max_named else ""
        return ", ".join(keys[:max_named]) + more

    unexpected = sorted(set(given) - set(expected))
    missing = sorted(set(expected) - set(given) - set(optional))
    wrong = sorted(k for k in set(given) & set(expected) if given[k].shape != expected[k].shape)
    problems = []
    if unexpected:
        problems.append(f"no place for {names(unexpected)}")
    if missing:
        problems.append(f"missing {names(missing)}")
    if wrong:
        problems.append("shape mismatch " + names(
            [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong]))
    return problems
