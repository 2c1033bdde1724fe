"""RDINO distillation: multi-crop views, the DINO loss, its centre, the variance/covariance
regulariser and the EMA teacher update.

What each piece follows (3D-Speaker's RDINO recipe, itself DINO; paper dossier §2.2):

* views: ``n_global`` global and ``n_local`` local random crops of each waveform; the teacher sees
  the global crops only, the student all of them;
* loss: mean over (teacher view i, student view v, v != i) of ``sum_k -q_i log p_v``, with
  ``q = softmax((t - centre) / tau_t)`` (no gradient) and ``p = softmax(s / tau_s)``;
* centre: ``c <- m c + (1 - m) mean_batch(t)`` after each step, on the teacher's raw outputs; the
  batch mean is global under DDP, so the caller passes the all-reduce (the loss never talks to
  ``torch.distributed``);
* regulariser (VICReg-style, on the head features of the global crops of student and teacher,
  gathered over processes): a hinge on each dimension's standard deviation and the squared
  off-diagonal covariance, divided by the head's output size (3D-Speaker ``RegLoss``);
* EMA teacher (teacher recipe only; the teacher JOOCI distils from is frozen):
  ``theta_t <- m theta_t + (1 - m) theta_s`` with a cosine schedule on ``m``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jooci.audio import SAMPLE_RATE

# ---------------------------------------------------------------------------------------------
# Multi-crop views


@dataclass(frozen=True)
class MultiCropConfig:
    """How many crops of which lengths (seconds; each view's length is drawn in the range)."""

    n_global: int = 2
    global_seconds: tuple[float, float] = (2.0, 3.0)
    n_local: int = 4
    local_seconds: tuple[float, float] = (1.0, 1.0)
    sample_rate: int = SAMPLE_RATE

    def validate(self) -> None:
        if self.n_global < 1:
            raise ValueError(f"need at least one global crop, got n_global={self.n_global}")
        if self.n_local < 0:
            raise ValueError(f"n_local must be >= 0, got {self.n_local}")
        for name, (lo, hi) in (("global_seconds", self.global_seconds), ("local_seconds", self.local_seconds)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {(lo, hi)}")


@dataclass
class View:
    """One crop of every utterance of a batch."""

    waveforms: torch.Tensor  # (B, L) float, zero after each length
    lengths: torch.Tensor  # (B,) long, absolute sample counts
    is_global: bool


def multi_crop(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    config: MultiCropConfig,
    *,
    generator: torch.Generator,
) -> list[View]:
    """Random crops of each waveform: the ``n_global`` global views first, then the local ones.

    Every view draws one target length in its range; an utterance shorter than that is taken
    whole (its view length is its own length), so a crop never runs into padding.

    Args:
        waveforms: ``(B, S)`` float, padded.
        lengths: ``(B,)`` valid samples per row.
        config: the crop layout.
        generator: CPU generator, the only source of randomness.

    Returns:
        ``n_global + n_local`` :class:`View` objects, each ``(B, L_v)`` with its lengths.
    """
    config.validate()
    if waveforms.dim() != 2 or lengths.shape != waveforms.shape[:1]:
        raise ValueError(f"expected waveforms (B, S) and lengths (B,), got {tuple(waveforms.shape)} "
                         f"and {tuple(lengths.shape)}")
    lengths_cpu = lengths.detach().to("cpu", torch.long)
    if bool((lengths_cpu < 1).any()) or int(lengths_cpu.max()) > waveforms.shape[1]:
        raise ValueError("lengths must be in [1, S]")
    sr = config.sample_rate
    plan = [(True, config.global_seconds)] * config.n_global + [(False, config.local_seconds)] * config.n_local
    views = []
    for is_global, (lo, hi) in plan:
        u = torch.rand((), generator=generator).item()
        target = max(1, round((lo + (hi - lo) * u) * sr))
        crop = torch.clamp(lengths_cpu, max=target)  # (B,)
        room = lengths_cpu - crop + 1  # number of possible offsets per row
        offset = (torch.rand(len(crop), generator=generator) * room).long().clamp(max=room - 1)
        width = int(crop.max())
        pos = torch.arange(width)[None, :]
        idx = (offset[:, None] + pos).clamp(max=waveforms.shape[1] - 1).to(waveforms.device)
        out = torch.gather(waveforms, 1, idx)
        out = out.masked_fill((pos >= crop[:, None]).to(waveforms.device), 0.0)
        views.append(View(out, crop.to(lengths.device), is_global))
    return views


# ---------------------------------------------------------------------------------------------
# DINO loss and centre


def dino_loss(
    student_out: Sequence[torch.Tensor],
    teacher_out: Sequence[torch.Tensor],
    center: torch.Tensor,
    *,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO cross-entropy between the teacher's centred, sharpened distribution and the student's.

    Args:
        student_out: one ``(B, K)`` prototype-logit tensor per view, global views first, in the
            same order as ``teacher_out``.
        teacher_out: one ``(B, K)`` tensor per global view (no gradient is taken through them).
        center: ``(K,)`` or ``(1, K)``, the :class:`DINOCenter` state.
        student_temp: tau_s (0.1).
        teacher_temp: tau_t (0.04).

    Returns:
        Scalar: mean over the ``n_teacher * n_student - n_teacher`` pairs (same view skipped)
        of the batch-mean cross-entropy.
    """
    if len(student_out) < len(teacher_out):
        raise ValueError(f"{len(student_out)} student views but {len(teacher_out)} teacher views: the "
                         "student must see every global view (first) plus the local ones")
    log_p = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student_out]
    total = student_out[0].new_zeros((), dtype=torch.float32)
    n_terms = 0
    for i, t in enumerate(teacher_out):
        q = F.softmax((t.detach().float() - center.reshape(1, -1)) / teacher_temp, dim=-1)
        for v, lp in enumerate(log_p):
            if v == i:  # the same crop: nothing to learn from predicting itself
                continue
            total = total + torch.sum(-q * lp, dim=-1).mean()
            n_terms += 1
    if n_terms == 0:
        raise ValueError("no (teacher, student) pair of different views: give the student at least two views")
    return total / n_terms


def embedding_distillation(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean cosine distance ``1 - cos(s, t)`` between the student's and a frozen teacher's
    embeddings of the *same* views (one ``(B, E)`` tensor per view, in the same order).

    Unlike :func:`dino_loss`, whose target is the teacher's distribution over prototypes (nearly
    uniform while the teacher is young), this pulls the student's embedding onto the teacher's
    directly, the way DistilHuBERT distils hidden states. Same-view pairs are the point here: the
    teacher is not learning, so there is no trivial solution to avoid.
    """
    if len(student) != len(teacher) or not teacher:
        raise ValueError(f"need one student embedding per teacher view, got {len(student)} and {len(teacher)}")
    terms = [1 - F.cosine_similarity(s.float(), t.detach().float(), dim=-1).mean() for s, t in zip(student, teacher)]
    return torch.stack(terms).mean()


Reduce = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor over processes and returns the sum, e.g. ``lambda t: (dist.all_reduce(t), t)[1]``."""


class DINOCenter:
    """The teacher-output centre: an explicit state, updated by EMA after each step.

    The batch mean is global: pass ``reduce`` (a sum over processes) under DDP. Sum and count are
    reduced together in one call, so ranks with different batch sizes still give the exact
    global mean.
    """

    def __init__(self, dim: int, momentum: float = 0.9, device: torch.device | str | None = None):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.center = torch.zeros(1, dim, device=device)

    @torch.no_grad()
    def update(self, teacher_out: Sequence[torch.Tensor] | torch.Tensor, reduce: Reduce | None = None) -> torch.Tensor:
        """``c <- m c + (1 - m) mean(t)`` over every row of every teacher view; returns the new centre.

        Args:
            teacher_out: ``(N, K)`` or a list of ``(B, K)`` raw teacher outputs (not centred).
            reduce: global sum over processes (None: single process).
        """
        t = teacher_out if isinstance(teacher_out, torch.Tensor) else torch.cat(list(teacher_out), dim=0)
        t = t.detach().float()
        packed = torch.cat([t.sum(dim=0), t.new_tensor([t.shape[0]])])  # (K + 1,): sum and count
        if reduce is not None:
            packed = reduce(packed)
        mean = (packed[:-1] / packed[-1]).reshape(1, -1).to(self.center.device)
        self.center.mul_(self.momentum).add_(mean, alpha=1.0 - self.momentum)
        return self.center

    def state_dict(self) -> dict:
        return {"center": self.center.clone(), "momentum": self.momentum}

    def load_state_dict(self, state: dict) -> None:
        if state["center"].shape != self.center.shape:
            raise ValueError(f"centre of shape {tuple(state['center'].shape)} does not fit {tuple(self.center.shape)}")
        self.center.copy_(state["center"])
        self.momentum = float(state["momentum"])


# ---------------------------------------------------------------------------------------------
# RDINO regulariser: diversity (variance hinge) and redundancy elimination (covariance)


def variance_loss(x: torch.Tensor, std_target: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Mean over dimensions of ``relu(std_target - sqrt(var + eps))``; ``x`` is ``(N, D)``, N >= 2."""
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, D) with N >= 2, got {tuple(x.shape)}")
    std = torch.sqrt(x.float().var(dim=0) + eps)  # unbiased, as VICReg / RDINO
    return F.relu(std_target - std).mean()


def covariance_loss(x: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Sum of squared off-diagonal covariances of ``x`` ``(N, D)``, divided by ``normalizer``
    (default D; RDINO's code divides by the DINO head's output size instead, pass it to match)."""
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, D) with N >= 2, got {tuple(x.shape)}")
    n, d = x.shape
    xc = x.float() - x.float().mean(dim=0)
    cov = xc.T @ xc / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / (normalizer if normalizer is not None else d)


@dataclass
class RegulariserOutput:
    loss: torch.Tensor  # std_coeff * std + cov_coeff * cov
    std: torch.Tensor
    cov: torch.Tensor


def _per_utterance(features: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return features if isinstance(features, torch.Tensor) else torch.stack(list(features)).mean(dim=0)


def rdino_regulariser(
    student: torch.Tensor | Sequence[torch.Tensor],
    teacher: torch.Tensor | Sequence[torch.Tensor] | None = None,
    *,
    std_coeff: float = 10.0,
    cov_coeff: float = 1.0,
    std_target: float = 1.0,
    cov_normalizer: float | None = None,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> RegulariserOutput:
    """RDINO's regulariser on the DINO head's features, scaled as 3D-Speaker's ``RegLoss``.

    Each network's features (one ``(B, D)`` per global view, averaged per utterance first) are
    gathered over processes and centred; then

    ``std = mean over networks of variance_loss``, ``cov = sum over networks of covariance_loss``

    for the student and, when given, the teacher: RDINO's ``std_x / 2 + std_y / 2`` and
    ``cov_x + cov_y``. The teacher's terms carry no gradient (its features come from a no-grad
    pass); they make the logged value RDINO's, and they halve the student's variance weight, as in
    RDINO. Without a teacher the student's terms stand alone (plain VICReg weights). A (gathered)
    batch of one utterance has no spread: every term is then 0.

    Args:
        student, teacher: ``(N, D)`` or one ``(B, D)`` per global view.
        std_coeff, cov_coeff: 10 and 1 in RDINO.
        std_target: the hinge's target standard deviation (1).
        cov_normalizer: divides each covariance term (default D). RDINO divides by the DINO head's
            output size (``out_dim``, 65536), not by D (8192): pass it to match.
        gather: concatenates a ``(B, D)`` tensor's rows over every process, with gradient back to
            each process's own rows (None: one process). Both terms are batch statistics, so under
            DDP they are taken over the global batch, as RDINO's ``FullGatherLayer`` does.
    """
    nets = [student] if teacher is None else [student, teacher]
    stds, covs = [], []
    for feats in nets:
        x = _per_utterance(feats)
        if gather is not None:
            x = gather(x)
        if x.shape[0] < 2:  # one utterance in the (global) batch: no spread to regularise
            zero = x.sum() * 0.0
            return RegulariserOutput(zero, zero.detach(), zero.detach())
        x = x - x.mean(dim=0, keepdim=True)
        stds.append(variance_loss(x, std_target))
        covs.append(covariance_loss(x, cov_normalizer))
    std = torch.stack(stds).mean()
    cov = torch.stack(covs).sum()
    return RegulariserOutput(std_coeff * std + cov_coeff * cov, std, cov)


# ---------------------------------------------------------------------------------------------
# EMA teacher


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place: ``theta_t <- momentum * theta_t + (1 - momentum) * theta_s`` for every parameter.

    Buffers (e.g. BatchNorm statistics) are left alone: the teacher keeps its own, as in DINO.
    Parameters are matched by name, so a teacher that is not a copy of the student is refused
    instead of being averaged with the wrong tensors.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    t_named = list(teacher.named_parameters())
    s_named = list(student.named_parameters())
    if [n for n, _ in t_named] != [n for n, _ in s_named]:
        missing = sorted({n for n, _ in s_named} ^ {n for n, _ in t_named})[:5]
        raise ValueError(f"teacher and student parameters differ (e.g. {missing}); the teacher must be a copy")
    t_params = [p for _, p in t_named]
    s_params = [p.detach() for _, p in s_named]
    for (name, tp), sp in zip(t_named, s_params):
        if tp.shape != sp.shape:
            raise ValueError(f"parameter {name}: teacher {tuple(tp.shape)} vs student {tuple(sp.shape)}")
    # one fused kernel launch per op over all parameters, as dinov2's update_teacher
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


__all__ = [
    "DINOCenter", "MultiCropConfig", "RegulariserOutput", "View", "covariance_loss", "dino_loss",
    "ema_update_", "multi_crop", "rdino_regulariser", "variance_loss",
]
