"""The Other encoder's regulariser losses (docs/method.md, the adversary and reconstruction rows).

* Content adversary: a small decoder on the Other encoder's frame states, behind a gradient
  reversal layer (``jooci.models.heads``), predicts the Content k-means labels. Its cross-entropy
  is minimised by the decoder and, through the reversed gradient scaled by lambda, *maximised* by
  the Other encoder, which pushes linguistic content out of the Other stream. lambda follows the
  DANN ramp so the adversary can first learn something worth fooling. The adversary's accuracy is
  the number to watch: it should fall towards chance as training goes on. Maximising a
  cross-entropy has no bound, though: the encoder can drive the decoder past chance into being
  confidently *wrong* (cross-entropy above ln K, accuracy near 0), which still leaves content in
  the states (experiments/adversary-objective/).
* Content confusion (``losses.adversary: confusion``): the same decoder learns the same CE on the
  Other states with no gradient into them; the encoder instead lowers :func:`confusion_loss`, the
  cross-entropy of the decoder's prediction (weights held fixed) against the uniform distribution.
  Its minimum, ln K, is a decoder that can tell nothing, so the encoder has no reason to go past
  chance (the "domain confusion" loss of Tzeng et al. 2015, with the DANN ramp kept).
* Log-mel reconstruction (no reversal, off by default): L1 or L2 on valid frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from jooci.losses.masked_prediction import IGNORE_INDEX


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """The DANN ramp ``2 / (1 + exp(-gamma p)) - 1``: 0 at p = 0, 0.987 at p = 0.5, 0.99991 at p = 1.

    ``progress`` (fraction of training done) is clamped to [0, 1].
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


@dataclass
class AdversaryOutput:
    loss: torch.Tensor  # mean CE over labelled, valid frames
    accuracy: float  # argmax accuracy on the same frames (logging)
    num_frames: int


def adversary_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    padding_mask: torch.Tensor | None = None,
) -> AdversaryOutput:
    """Cross-entropy of the adversary decoder's logits against Content cluster labels.

    The gradient reversal is the model's (a GRL layer before the decoder); this loss is a plain CE
    the caller adds with a positive weight.

    Args:
        logits: ``(B, T, K)``.
        targets: ``(B, T)`` cluster labels, ``-100`` where unlabelled.
        padding_mask: ``(B, T)`` bool, True at padding (those frames are ignored).
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree on (B, T)")
    sel = targets != IGNORE_INDEX
    if padding_mask is not None:
        sel = sel & ~padding_mask
    n = int(sel.sum())
    if n == 0:
        return AdversaryOutput(logits.sum() * 0.0, 0.0, 0)
    lg, tg = logits[sel].float(), targets[sel].long()
    loss = F.cross_entropy(lg, tg)
    with torch.no_grad():
        acc = float((lg.argmax(-1) == tg).float().mean())
    return AdversaryOutput(loss, acc, n)


def confusion_loss(logits: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the adversary's prediction against the uniform distribution, mean over
    valid frames: ``-mean_k log softmax(logits)_k``. Bounded below by ln K (a uniform prediction).

    Args:
        logits: ``(B, T, K)``; padding_mask: ``(B, T)`` bool, True at padding (ignored frames).
    """
    per_frame = -torch.log_softmax(logits.float(), dim=-1).mean(dim=-1)
    if padding_mask is None:
        return per_frame.mean()
    valid = ~padding_mask
    if not valid.any():
        return logits.sum() * 0.0
    return per_frame[valid].mean()


def reconstruction_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    padding_mask: torch.Tensor | None = None,
    kind: str = "l1",
) -> torch.Tensor:
    """Mean L1 (or squared L2) error between predicted and target log-mel on valid frames.

    Args:
        prediction, target: ``(B, T, D)``, same frame rate (50 Hz log-mel, see ``jooci.features``).
        padding_mask: ``(B, T)`` bool, True at padding.
        kind: ``"l1"`` or ``"l2"``.

    Returns:
        Scalar: mean over valid frames and the D dimensions.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    if kind == "l1":
        err = (prediction.float() - target.float()).abs()
    elif kind == "l2":
        err = (prediction.float() - target.float()).pow(2)
    else:
        raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
    if padding_mask is None:
        return err.mean()
    valid = (~padding_mask).unsqueeze(-1).to(err.dtype)
    n = valid.sum() * err.shape[-1]
    if n == 0:
        return prediction.sum() * 0.0
    return (err * valid).sum() / n


__all__ = ["AdversaryOutput", "adversary_loss", "confusion_loss", "dann_lambda", "reconstruction_loss"]
