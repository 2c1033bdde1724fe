"""Precomputed per-step schedules (dinov2's ``CosineScheduler`` idea): an array built once, indexed
by step, so the value at any step is known in advance, cheap, and identical after a resume."""

from __future__ import annotations

import numpy as np


class CosineSchedule:
    """``freeze_steps`` zeros, then a linear warm-up from ``start_warmup_value`` to ``base_value``
    over ``warmup_steps``, then a half cosine from ``base_value`` to ``final_value`` over the rest
    of ``total_steps``. Past the end it stays at ``final_value``.

    Examples (the RDINO recipe, steps instead of epochs):
        teacher momentum 0.996 -> 1: ``CosineSchedule(0.996, 1.0, total)``;
        regulariser weight 0.05 -> 0.2 over the warm-up, then flat:
        ``CosineSchedule(0.2, 0.2, total, warmup_steps=w, start_warmup_value=0.05)``.
    """

    def __init__(self, base_value: float, final_value: float, total_steps: int, *, warmup_steps: int = 0,
                 start_warmup_value: float = 0.0, freeze_steps: int = 0):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if warmup_steps < 0 or freeze_steps < 0 or warmup_steps + freeze_steps > total_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) + freeze_steps ({freeze_steps}) must be "
                             f"non-negative and fit in total_steps ({total_steps})")
        self.base_value, self.final_value, self.total_steps = base_value, final_value, total_steps
        freeze = np.zeros(freeze_steps)
        # endpoint excluded: step `warmup_steps` is the first cosine step and holds base_value
        warmup = np.linspace(start_warmup_value, base_value, warmup_steps, endpoint=False)
        n = total_steps - warmup_steps - freeze_steps
        steps = np.arange(n)
        cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * steps / max(n, 1)))
        self.values = np.concatenate([freeze, warmup, cosine]).astype(np.float64)
        assert len(self.values) == total_steps

    def __getitem__(self, step: int) -> float:
        if step < 0:
            raise IndexError(f"negative step {step}")
        return float(self.values[step]) if step < self.total_steps else float(self.final_value)

    def __len__(self) -> int:
        return self.total_steps


__all__ = ["CosineSchedule"]
