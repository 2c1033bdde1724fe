"""Small tensor helpers shared by the model parts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, max_len)`` bool, True at padding (position >= length)."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


_DROPOUT_LEVELS = 1 << 16


def dropout(x: Tensor, p: float, active: bool) -> Tensor:
    """Inverted dropout (``F.dropout``'s contract), with a cheaper mask on the CPU.

    On the CPU, ``F.dropout`` draws one float per element through ``bernoulli_``, which costs
    some 40 times the multiply it gates (a fifth of the small preset's Content step). Here each
    element gets 16 random bits instead, taken from 64-bit draws of the global generator (so
    ``torch.manual_seed`` and a saved RNG state reproduce the mask), and is dropped when they fall
    below ``round(p * 2**16)``. The drop probability is that over ``2**16`` (0.1 -> 0.1000061) and
    kept elements are scaled by its complement's inverse, so the output's expectation is ``x``
    exactly, as with ``F.dropout``. On other devices ``F.dropout`` itself runs.
    """
    if not active or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    threshold = round(p * _DROPOUT_LEVELS)
    n = x.numel()
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64)
    bits = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-2**15, 2**15)
    keep = bits >= threshold - _DROPOUT_LEVELS // 2
    return x * keep.to(x.dtype).mul_(_DROPOUT_LEVELS / (_DROPOUT_LEVELS - threshold))


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
