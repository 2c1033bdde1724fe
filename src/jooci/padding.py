"""Zero-padding of waveforms into one batch: the one helper the data loader, ``jooci extract``,
the k-means feature dumps and the evaluation cache share (a leaf module: it imports only torch,
so the data layer and the model layer can both use it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_waveforms(waves: Sequence[np.ndarray | torch.Tensor],
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D waveforms into a zero-padded batch.

    Args:
        waves: B one-dimensional arrays or tensors (any float dtype; cast to float32).
        device: where the batch and lengths are made (default: the CPU).

    Returns:
        ``(B, S)`` float32 waveforms, zero after each item's end (S the longest; ``(0, 0)`` for an
        empty list), and ``(B,)`` int64 lengths in samples.
    """
    lengths = torch.tensor([int(w.shape[0]) for w in waves], dtype=torch.int64, device=device)
    if any(w.ndim != 1 for w in waves):
        raise ValueError(f"pad_waveforms takes 1-D waveforms, got shapes {[tuple(w.shape) for w in waves]}")
    out = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0, dtype=torch.float32, device=device)
    for i, w in enumerate(waves):
        out[i, : w.shape[0]] = torch.as_tensor(w)
    return out, lengths


__all__ = ["pad_waveforms"]
