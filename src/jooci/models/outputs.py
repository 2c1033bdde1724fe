"""Typed outputs of the model compositions. All tensors are (batch, time, feature); ``lengths`` are
absolute frame counts; ``padding_mask`` is True at padding; frames are at 50 Hz (stride 320)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from jooci.models.heads import DINOHeadOutput


@dataclass
class FeatureOutput:
    """What ``extract_features`` returns.

    hidden_states: every state a downstream weighted sum may use, all (B, T, D) with one D
        (``content_states + other_states``; as many as the model's ``num_hidden_states``). JOOCI
        and the baseline: the Transformer input (CNN frames projected, pos-conv, LayerNorm),
        each Content layer, then each Other block (JOOCI only); the speaker teacher: its blocks.
    content_states: the Content part (L + 1 tensors; [] for the teacher); other_states: the
        Other part, or the teacher's blocks ([] for the baseline); embedding: (B, E) utterance
        embedding (None for the baseline).
    """

    hidden_states: list[Tensor]
    content_states: list[Tensor]
    other_states: list[Tensor]
    lengths: Tensor
    padding_mask: Tensor
    embedding: Tensor | None


@dataclass
class BaselineOutput:
    """Training forward of the HuBERT baseline.

    cluster_logits: one (B, T, K_i) per label set; features_penalty: scalar mean square of the
    pre-norm CNN output (HuBERT's feature penalty).
    """

    cluster_logits: list[Tensor]
    content_states: list[Tensor]
    lengths: Tensor
    padding_mask: Tensor
    features_penalty: Tensor


@dataclass
class OtherForwardOutput:
    """The Other branch alone (for RDINO crops): states N x (B, T, C), embedding (B, E), DINO head
    outputs, and the regulariser decoder's logits (B, T, K) behind the gradient reversal (either
    head None when the caller skipped it)."""

    other_states: list[Tensor]
    embedding: Tensor
    dino: DINOHeadOutput | None
    regulariser_logits: Tensor | None
    lengths: Tensor
    padding_mask: Tensor


@dataclass
class JOOCIOutput:
    """Training forward of JOOCI: everything the Content and Other losses need.

    cluster_logits: one (B, T, K_i) per label set, from the (masked) Content pass;
    embedding: (B, E) Other utterance embedding; dino: its DINO head outputs (None when skipped);
    regulariser_logits: (B, T, K) Content-cluster logits from the Other frames behind the GRL;
    mel: (B, T, n_mels) reconstruction, or None when the decoder is off.
    """

    cluster_logits: list[Tensor]
    content_states: list[Tensor]
    other_states: list[Tensor]
    embedding: Tensor
    dino: DINOHeadOutput | None
    regulariser_logits: Tensor
    mel: Tensor | None
    lengths: Tensor
    padding_mask: Tensor
    features_penalty: Tensor
