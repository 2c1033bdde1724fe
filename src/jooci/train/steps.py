"""One function per training phase: model(s) + batch + step context -> loss and metrics.

No I/O, no optimizer, no backward: the loop (:mod:`jooci.train.loop`) does those. Each function
reads top to bottom as the phase's recipe:

- :func:`content_step`: HuBERT-style multi-cluster masked prediction (the Content iterations, and
  the whole of the baseline);
- :func:`teacher_step`: the RDINO recipe for the speaker teacher (DINO between an EMA teacher and
  the student over multi-crop views, plus the variance/covariance regulariser);
- :func:`phase1_step`: the Other encoder alone (Content frozen) — distillation from the frozen
  teacher (with its final, fixed DINO centre) and the gradient-reversal content adversary;
- :func:`phase2_step`: everything jointly — masked prediction + distillation + adversary.

Randomness: each utterance's mask comes from a generator seeded by (seed, step, utterance id,
crop offset), so masks do not depend on how utterances are grouped into batches or ranks (one
process with a combined batch draws exactly what two DDP ranks draw); crops come from
``ctx.generator``, seeded per step and rank. A resumed run draws what an uninterrupted one would.

Under DDP the masked-prediction loss is normalised by the *global* number of masked frames (the
counts are all-reduced), so the averaged gradient equals that of one process with the combined
batch, however the masked frames fall on the ranks (torchaudio's HuBERT recipe does the same).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dataclasses
import zlib

import torch
from torch import Tensor

from jooci.data.augment import augment
from jooci.data.dataset import Batch
from jooci.features import log_mel
from jooci.losses.dino import (DINOCenter, View, dino_loss, embedding_distillation, multi_crop,
                               rdino_regulariser)
from jooci.losses.masked_prediction import IGNORE_INDEX, compute_span_mask, multi_cluster_mpl
from jooci.losses.regulariser import adversary_loss, confusion_loss, reconstruction_loss
from jooci.models._util import padding_mask as make_padding_mask
from jooci.models.baseline import HuBERTBaseline
from jooci.models.jooci import JOOCI
from jooci.models.speaker import SpeakerModel
from jooci.train.config import LossConfig

Reduce = Callable[[Tensor], Tensor]

SHAPE_QUANTUM = 3200
"""Padded widths are rounded up to a multiple of this many samples (0.2 s, 10 frames). The models
are padding-aware, so the extra zeros change nothing, while the few distinct shapes let oneDNN
reuse its convolution kernels instead of building new ones for almost every step (on CPU the
small preset's teacher step runs several times faster)."""


@dataclass
class StepContext:
    """What a step needs besides models and batch.

    label_names: batch label keys in the order of the model's label sets.
    grl_lambda: gradient-reversal strength now (DANN ramp, computed by the loop).
    rdino_weight: the RDINO regulariser's weight now (teacher phase).
    reduce: sum over processes (None in a single process), for the DINO centre.
    gather: rows of every process, concatenated, with gradient (None in a single process), for
    the RDINO regulariser's batch statistics.
    """

    losses: LossConfig
    generator: torch.Generator  # crops (seeded per step and rank by the loop)
    seed: int = 0
    step: int = 0
    label_names: tuple[str, ...] = ()
    grl_lambda: float = 1.0
    rdino_weight: float = 0.0
    reduce: Reduce | None = None
    gather: Reduce | None = None
    world_size: int = 1


@dataclass
class StepOutput:
    """loss: the scalar to back-propagate. metrics: the loss terms and accuracies, for logging;
    JOOCI's phases also log ``objective``, the loss without the adversary decoder's cross-entropy, which
    the encoder *raises* through the gradient reversal layer by design (so the total loss of a
    working adversarial run need not fall, while the objective does)."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The four phases


def content_step(model: HuBERTBaseline | JOOCI, batch: Batch, ctx: StepContext) -> StepOutput:
    """Multi-cluster masked prediction on the Content encoder (HuBERT iteration)."""
    batch = _quantized(batch)
    mask, pad = _span_mask(model, batch, ctx)
    if isinstance(model, JOOCI):  # the Content iterations of JOOCI itself train no Other part
        raise TypeError("content_step trains a HuBERTBaseline; JOOCI's joint step is phase2_step")
    out = model(batch.waveforms, batch.lengths, mask)
    loss, metrics = _content_terms(out.cluster_logits, out.features_penalty, batch, mask, pad, ctx)
    metrics["masked_fraction"] = float(mask.sum() / (~pad).sum())
    return StepOutput(loss, metrics)


def teacher_step(student: SpeakerModel, teacher: SpeakerModel, center: DINOCenter, batch: Batch,
                 ctx: StepContext) -> StepOutput:
    """RDINO: the student on every crop learns the EMA teacher's centred, sharpened outputs on the
    global crops; the variance/covariance regulariser keeps the head features from collapsing
    (a batch statistic: 0 for a batch of one utterance)."""
    c = ctx.losses
    views = _views(batch, ctx, c.augment_teacher_views)
    n_global = c.crops.n_global
    with torch.no_grad():
        _, t_features, t_logits = _speaker_views(teacher, views[:n_global], n_global)
    _, s_features, s_logits = _speaker_views(student, views, n_global)
    distill = dino_loss(s_logits, t_logits, center.center, student_temp=c.student_temp,
                        teacher_temp=c.teacher_temp)
    # RDINO's scaling: student and teacher terms, covariance over the head's output size, the
    # global batch's statistics (docs/method.md T30)
    reg = rdino_regulariser(s_features[:n_global], t_features, std_coeff=c.rdino_std, cov_coeff=c.rdino_cov,
                            cov_normalizer=student.cfg.head.out_dim, gather=ctx.gather)
    loss = distill + ctx.rdino_weight * reg.loss
    center.update(t_logits, ctx.reduce)
    return StepOutput(loss, {"distill": distill.item(), "rdino_reg": reg.loss.item(),
                             "rdino_std": reg.std.item(), "rdino_cov": reg.cov.item(),
                             "rdino_weight": ctx.rdino_weight})


def phase1_step(model: JOOCI, teacher: SpeakerModel, center: DINOCenter, batch: Batch,
                ctx: StepContext) -> StepOutput:
    """The Other encoder alone: distillation from the frozen teacher + the content adversary.

    The frontend and Content encoder are frozen by the loop (requires_grad off, not in the
    optimizer); nothing here can reach them anyway, since split-and-append detaches.
    """
    batch = _quantized(batch)
    c = ctx.losses
    full = model.forward_other(batch.waveforms, batch.lengths, grl_lambda=_reversal(ctx), dino=False,
                               other_trains_frontend=c.adversary_trains_frontend)
    terms, metrics = _other_terms(model, teacher, center, batch, ctx, full.regulariser_logits, full.other_states,
                                  full.padding_mask)
    loss = (c.distill * terms["distill"] + c.distill_embedding * terms["distill_embedding"]
            + c.regulariser * terms["adversary"] + c.reconstruction * terms["reconstruction"])
    metrics["objective"] = (loss - c.regulariser * terms["adversary_ce"]).item()
    return StepOutput(loss, metrics)


def phase2_step(model: JOOCI, teacher: SpeakerModel, center: DINOCenter, batch: Batch,
                ctx: StepContext) -> StepOutput:
    """Joint training: masked prediction on Content, distillation + adversary on Other (1 : 1 : 1)."""
    batch = _quantized(batch)
    c = ctx.losses
    mask, pad = _span_mask(model, batch, ctx)
    out = model(batch.waveforms, batch.lengths, mask, grl_lambda=_reversal(ctx), dino=False,
                other_trains_frontend=c.adversary_trains_frontend)
    content_loss, content_metrics = _content_terms(out.cluster_logits, out.features_penalty, batch, mask, pad, ctx)
    terms, metrics = _other_terms(model, teacher, center, batch, ctx, out.regulariser_logits, out.other_states,
                                  out.padding_mask, mel=out.mel)
    loss = (content_loss + c.distill * terms["distill"] + c.distill_embedding * terms["distill_embedding"]
            + c.regulariser * terms["adversary"] + c.reconstruction * terms["reconstruction"])
    metrics.update(content_metrics)
    metrics["objective"] = (loss - c.regulariser * terms["adversary_ce"]).item()
    return StepOutput(loss, metrics)


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _content_terms(logits: list[Tensor], features_penalty: Tensor, batch: Batch, mask: Tensor, pad: Tensor,
                   ctx: StepContext) -> tuple[Tensor, dict[str, float]]:
    """Masked prediction (+ optionally the unmasked frames, fairseq's ``pred_nomask_weight``) and
    the feature penalty, normalised over all ranks."""
    c = ctx.losses
    targets = _targets(batch, ctx.label_names, mask.shape[1])
    mpl = multi_cluster_mpl(logits, targets, mask)
    mpl_loss, penalty = _global_mean(mpl, features_penalty, pad, ctx)
    loss = c.mpl * mpl_loss + c.feature_penalty * penalty
    metrics = {"mpl": mpl.loss.item(), "feature_penalty": features_penalty.item()}
    metrics.update(_per_set("mpl", mpl.losses, mpl.accuracies, ctx.label_names))
    if c.mpl_unmasked > 0:
        unmasked = multi_cluster_mpl(logits, targets, ~mask & ~pad)
        unmasked_loss, _ = _global_mean(unmasked, features_penalty, pad, ctx)
        loss = loss + c.mpl * c.mpl_unmasked * unmasked_loss
        metrics["mpl_unmasked"] = unmasked.loss.item()
    return loss, metrics


def _reversal(ctx: StepContext) -> float:
    """The gradient-reversal strength the model's forward gets: the DANN ramp's value for the
    paper's ``reversal`` objective; 0 for ``confusion``, whose decoder pass must not reach the
    Other states (the encoder gets :func:`confusion_loss` instead)."""
    return ctx.grl_lambda if ctx.losses.adversary == "reversal" else 0.0


def _other_terms(model: JOOCI, teacher: SpeakerModel, center: DINOCenter, batch: Batch, ctx: StepContext,
                 regulariser_logits: Tensor, other_states: list[Tensor], pad: Tensor, mel: Tensor | None = None
                 ) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Distillation over multi-crop views, the adversary on the full batch, optional reconstruction.

    The adversary term is the decoder's cross-entropy (through the gradient reversal for
    ``losses.adversary: reversal``); for ``confusion`` it also holds the encoder's bounded term,
    ramped like the reversal: ``CE + lambda * confusion_loss``.

    Two distillation terms: the DINO one (the student's prototype distribution on every crop learns
    the teacher's centred, sharpened one on the global crops) and, with ``losses.distill_embedding``,
    the cosine distance between the student's and the teacher's utterance embeddings on the same
    global crop (the student's DINO head is the teacher's, so both embeddings live in one space).
    """
    c = ctx.losses
    views = _views(batch, ctx, c.augment_views)
    n_global = c.crops.n_global
    with torch.no_grad():
        t_emb, _, t_logits = _speaker_views(teacher, views[:n_global], n_global)
    s_logits, s_emb = [], []
    for group in (views[:n_global], views[n_global:]):  # globals together, locals together
        if group:
            wav, lengths = _stack(group)
            o = model.forward_other(wav, lengths, regulariser=False, other_trains_frontend=c.distill_trains_frontend)
            s_logits += list(o.dino.logits.split(batch.waveforms.shape[0]))
            s_emb += list(o.embedding.split(batch.waveforms.shape[0]))
    # The frozen teacher comes with the centre it finished training with; it stays fixed here, so
    # the targets do not drift (centering fights collapse of a *learning* teacher, not needed now).
    distill = dino_loss(s_logits, t_logits, center.center, student_temp=c.student_temp,
                        teacher_temp=c.teacher_temp)
    embed = embedding_distillation(s_emb[:n_global], t_emb)

    name = ctx.label_names[model.cfg.regulariser_label_set]
    adv_targets = _align(batch.labels[name], regulariser_logits.shape[1])
    adv = adversary_loss(regulariser_logits, adv_targets, pad)
    adversary = adv.loss
    extra: dict[str, float] = {}
    if c.adversary == "confusion":
        confusion = confusion_loss(model.regulariser.confusion_logits(other_states), pad)
        adversary = adversary + ctx.grl_lambda * confusion
        extra["confusion"] = confusion.item()

    recon = regulariser_logits.new_zeros(())
    if mel is not None and c.reconstruction > 0:
        target, _ = log_mel(batch.waveforms, batch.lengths, rate=50, num_mel_bins=mel.shape[-1])
        t = min(target.shape[1], mel.shape[1])
        recon = reconstruction_loss(mel[:, :t], target[:, :t].to(mel.device), pad[:, :t])
    metrics = {"distill": distill.item(), "distill_embedding": embed.item(), "adversary": adv.loss.item(),
               "adversary_acc": adv.accuracy, "grl_lambda": ctx.grl_lambda, **extra}
    if mel is not None:
        metrics["reconstruction"] = recon.item()
    return {"distill": distill, "distill_embedding": embed, "adversary": adversary, "adversary_ce": adv.loss,
            "reconstruction": recon}, metrics


def _views(batch: Batch, ctx: StepContext, augmented: bool) -> list[View]:
    """Multi-crop views, each augmented on its own when ``augmented`` (``losses.augment_teacher_views``
    in the teacher phase, ``losses.augment_views`` in phases 1-2)."""
    c = ctx.losses
    views = multi_crop(batch.waveforms, batch.lengths, c.crops, generator=ctx.generator)
    if augmented:
        views = [View(augment(v.waveforms, v.lengths, c.augment, generator=ctx.generator), v.lengths, v.is_global)
                 for v in views]
    return views


def _speaker_views(model: SpeakerModel, views: list[View], n_global: int
                   ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The speaker model (through its own log-mel front-end) on each view (globals stacked into
    one batch, locals into another): per view, the embedding (B, E), the DINO head's features
    (B, F) and its prototype logits (B, K)."""
    embeddings, features, logits = [], [], []
    for group in (views[:n_global], views[n_global:]):
        if not group:
            continue
        wav, lengths = _stack(group)
        out = model(wav, lengths)
        b = group[0].waveforms.shape[0]
        embeddings += list(out.embedding.split(b))
        features += list(out.head.features.split(b))
        logits += list(out.head.logits.split(b))
    return embeddings, features, logits


def _quantized(batch: Batch) -> Batch:
    """``batch`` with its padded width rounded up to :data:`SHAPE_QUANTUM`."""
    width = batch.waveforms.shape[1]
    extra = -width % SHAPE_QUANTUM
    if extra == 0:
        return batch
    return dataclasses.replace(batch, waveforms=torch.nn.functional.pad(batch.waveforms, (0, extra)))


def _stack(views: list[View]) -> tuple[Tensor, Tensor]:
    """Views of one kind as one padded batch: (V*B, L) and (V*B,) lengths, L the longest view
    rounded up to :data:`SHAPE_QUANTUM`."""
    width = max(v.waveforms.shape[1] for v in views)
    width += -width % SHAPE_QUANTUM
    wav = torch.cat([torch.nn.functional.pad(v.waveforms, (0, width - v.waveforms.shape[1])) for v in views])
    return wav, torch.cat([v.lengths for v in views])


def _span_mask(model: HuBERTBaseline | JOOCI, batch: Batch, ctx: StepContext) -> tuple[Tensor, Tensor]:
    """(B, T) span mask, one generator per utterance (see the module docstring), and the padding mask."""
    c = ctx.losses
    frames = model.frame_lengths(batch.lengths)
    total = int(model.frame_lengths(torch.tensor([batch.waveforms.shape[1]]))[0])
    pad = make_padding_mask(frames, total)
    rows = []
    for i, uid in enumerate(batch.ids):
        offset = int(batch.offsets[i]) if len(batch.offsets) else 0
        g = torch.Generator().manual_seed(_mix(ctx.seed, ctx.step, zlib.crc32(uid.encode()), offset))
        rows.append(compute_span_mask((1, total), pad[i:i + 1].cpu(), c.mask_prob, c.mask_length,
                                      generator=g, min_masks=c.min_masks))
    mask = torch.cat(rows).to(batch.waveforms.device) if rows else pad.new_zeros((0, total))
    return mask, pad


def _mix(*values: int) -> int:
    h = 0
    for v in values:
        h = (h * 1_000_003 + int(v)) % (2**61 - 1)
    return h


def _global_mean(mpl, penalty: Tensor, pad: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
    """The MPL (per label set) and feature penalty as means over the frames of *all* ranks.

    Each rank's means are re-weighted by its share of the global count times the world size; DDP
    then averages gradients over ranks, which gives the combined batch's gradient exactly. In one
    process the factors are exactly 1.
    """
    if ctx.reduce is None or ctx.world_size == 1:
        return mpl.loss, penalty
    local = torch.tensor([*mpl.num_frames, float((~pad).sum())], dtype=torch.float64, device=pad.device)
    total = ctx.reduce(local.clone()).clamp(min=1)
    scale = (local * ctx.world_size / total).to(torch.float32)
    loss = sum(set_loss * scale[i] for i, set_loss in enumerate(mpl.losses))  # equal set weights, as the step
    return loss, penalty * scale[-1]


def _targets(batch: Batch, names: tuple[str, ...], frames: int) -> list[Tensor]:
    missing = [n for n in names if n not in batch.labels]
    if missing:
        raise KeyError(f"batch has no labels {missing}; it has {sorted(batch.labels)}")
    return [_align(batch.labels[n], frames) for n in names]


def _align(labels: Tensor, frames: int) -> Tensor:
    """Labels (B, T_lab) cut or padded (with the ignore index) to the model's T frames: the label
    pipeline guarantees per-utterance counts within one frame of the CNN's."""
    if labels.shape[1] >= frames:
        return labels[:, :frames]
    return torch.nn.functional.pad(labels, (0, frames - labels.shape[1]), value=IGNORE_INDEX)


def _per_set(prefix: str, losses: list[Tensor], accs: list[float], names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name, loss, acc in zip(names, losses, accs):
        out[f"{prefix}/{name}"] = loss.item()
        out[f"{prefix}_acc/{name}"] = acc
    return out
