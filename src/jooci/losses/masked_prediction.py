"""Span masking and the multi-cluster masked prediction loss (the Content encoder's objective).

Masking follows fairseq's ``compute_mask_indices`` (the ``static`` span mode HuBERT uses): per
utterance of ``sz`` valid frames, ``int(mask_prob * sz / span + u)`` spans (``u`` ~ U[0, 1), so the
expected count is exact), at least ``min_masks``; span starts drawn without replacement; spans may
overlap (so the masked fraction is below ``mask_prob``: ~ 0.57 for 0.8 / 10) and are cut at the end
of the valid frames, so padding is never masked. Randomness comes only from the
``torch.Generator`` passed in, so a step is reproducible from the generator's state.

The loss is HuBERT's, once per label set: cross-entropy of cosine logits on masked frames only
(unmasked frames have weight 0 in HuBERT-Base), each set averaged over its own valid frames, sets
summed with weights (equal by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Target value for frames without a label (padding, or frames the label file does not cover)."""


def compute_span_mask(
    shape: tuple[int, int],
    padding_mask: torch.Tensor | None,
    mask_prob: float,
    mask_length: int,
    *,
    generator: torch.Generator,
    min_masks: int = 2,
    require_same_masks: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Span mask with fairseq ``compute_mask_indices`` semantics (static span length).

    Args:
        shape: ``(B, T)``.
        padding_mask: ``(B, T)`` bool, True at padding (or None: no padding). Only the count of
            valid frames is used: padding is assumed to be at the end, as everywhere in jooci.
        mask_prob: expected fraction of frames that start-or-belong to a span before overlaps
            (HuBERT-Base: 0.8).
        mask_length: span length in frames (HuBERT-Base: 10).
        generator: the only source of randomness (CPU generator).
        min_masks: at least this many spans per utterance (HuBERT: 2).
        require_same_masks: fairseq's default for wav2vec 2.0: thin every row at random to the
            smallest row's masked count (contrastive negatives needed equal counts). HuBERT's loss
            does not need it and the thinning breaks spans, so it is off by default.
        device: device of the returned mask (default: that of ``padding_mask``, else CPU).

    Returns:
        ``(B, T)`` bool, True where the frame is masked; never True at padding.
    """
    if mask_length < 1:
        raise ValueError(f"mask_length must be >= 1, got {mask_length}")
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    bsz, all_sz = shape
    if device is None:
        device = padding_mask.device if padding_mask is not None else "cpu"
    if padding_mask is not None:
        if tuple(padding_mask.shape) != (bsz, all_sz):
            raise ValueError(f"padding_mask has shape {tuple(padding_mask.shape)}, expected {(bsz, all_sz)}")
        valid = (~padding_mask).sum(dim=1).tolist()
    else:
        valid = [all_sz] * bsz

    rows: list[torch.Tensor] = []
    for sz in valid:
        if sz <= 0 or (mask_prob == 0.0 and min_masks == 0):
            rows.append(torch.empty(0, dtype=torch.long))
            continue
        u = torch.rand((), generator=generator).item()
        num_mask = max(min_masks, int(mask_prob * sz / float(mask_length) + u))
        # fairseq: starts are drawn from [0, sz - span); when that range has no room for
        # num_mask distinct starts, it widens to num_mask + 1 candidates and clips spans at sz.
        n_cand = sz - mask_length if sz - mask_length > num_mask else num_mask + 1
        starts = torch.randperm(n_cand, generator=generator)[:num_mask]
        idx = (starts[:, None] + torch.arange(mask_length)[None, :]).reshape(-1)
        rows.append(torch.unique(idx[idx < sz]))

    if require_same_masks and rows:
        keep = min(len(r) for r in rows)
        rows = [r if len(r) <= keep else r[torch.randperm(len(r), generator=generator)[:keep]] for r in rows]

    mask = torch.zeros(bsz, all_sz, dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, r] = True
    return mask.to(device)


@dataclass
class MPLOutput:
    """Result of :func:`multi_cluster_mpl`: the loss to back-propagate and what to log."""

    loss: torch.Tensor  # scalar: weighted sum of the per-set losses
    losses: list[torch.Tensor]  # per label set: mean CE over its masked, labelled frames
    accuracies: list[float]  # per label set: argmax accuracy on the same frames (logging only)
    num_frames: list[int]  # per label set: how many frames the loss was averaged over


def multi_cluster_mpl(
    logits: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    mask: torch.Tensor,
    weights: Sequence[float] | None = None,
) -> MPLOutput:
    """Multi-cluster masked prediction loss: one HuBERT cross-entropy per label set, summed.

    Args:
        logits: one ``(B, T, K_i)`` tensor per label set: cosine similarity / temperature
            (the head's job); any frame rate, as long as it is the targets' one.
        targets: one ``(B, T)`` integer tensor per label set, ``-100`` where there is no label
            (padding included).
        mask: ``(B, T)`` bool, True at masked frames; only those frames count.
        weights: one weight per label set (default: 1 each, HuBERT's plain sum).

    Returns:
        :class:`MPLOutput`. A set with no labelled masked frame contributes a zero loss that
        still depends on its logits (so DDP sees every parameter used).
    """
    if len(logits) != len(targets):
        raise ValueError(f"{len(logits)} logit tensors but {len(targets)} target tensors")
    if not logits:
        raise ValueError("need at least one label set")
    weights = [1.0] * len(logits) if weights is None else list(weights)
    if len(weights) != len(logits):
        raise ValueError(f"{len(weights)} weights for {len(logits)} label sets")
    losses, accs, counts = [], [], []
    total = logits[0].new_zeros(())
    for i, (lg, tg) in enumerate(zip(logits, targets)):
        if lg.shape[:2] != tg.shape or tg.shape != mask.shape:
            raise ValueError(f"label set {i}: logits {tuple(lg.shape)}, targets {tuple(tg.shape)} and "
                             f"mask {tuple(mask.shape)} disagree on (B, T)")
        sel = mask & (tg != IGNORE_INDEX)
        n = int(sel.sum())
        if n == 0:
            loss = lg.sum() * 0.0
            acc = 0.0
        else:
            lg_sel, tg_sel = lg[sel], tg[sel].long()
            if int(tg_sel.max()) >= lg.shape[-1]:
                raise ValueError(f"label set {i}: target {int(tg_sel.max())} >= number of classes {lg.shape[-1]}")
            loss = F.cross_entropy(lg_sel.float(), tg_sel, reduction="mean")
            with torch.no_grad():
                acc = float((lg_sel.argmax(-1) == tg_sel).float().mean())
        losses.append(loss)
        accs.append(acc)
        counts.append(n)
        total = total + weights[i] * loss
    return MPLOutput(loss=total, losses=losses, accuracies=accs, num_frames=counts)


__all__ = ["IGNORE_INDEX", "MPLOutput", "compute_span_mask", "multi_cluster_mpl"]
