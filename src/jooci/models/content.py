"""The Content encoder: HuBERT-Base's projection, mask embedding and Transformer.

Input is the shared CNN's normalised frames (the LayerNorm(512) that HF keeps in
``HubertFeatureProjection`` lives in :class:`~jooci.models.frontend.ConvFrontend`, because the
Other encoder reads the same normalised frames); this module adds the Linear 512 -> 768 projection
(fairseq ``post_extract_proj``) with its dropout (``dropout_input``), replaces masked frames with a
learned embedding (``mask_emb``) and runs the Transformer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from jooci.models._util import dropout
from jooci.models.transformer import TransformerConfig, TransformerEncoder


@dataclass(frozen=True)
class ContentConfig:
    """Content encoder: input projection + Transformer."""

    input_dim: int = 512  # the frontend's output channels
    projection_dropout: float = 0.1  # fairseq dropout_input
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    @property
    def dim(self) -> int:
        return self.transformer.dim

    @property
    def num_layers(self) -> int:
        return self.transformer.num_layers


class ContentEncoder(nn.Module):
    """Frames (B, T, input_dim) -> ``num_layers + 1`` states (B, T, dim)."""

    def __init__(self, cfg: ContentConfig):
        super().__init__()
        self.cfg = cfg
        self.projection = nn.Linear(cfg.input_dim, cfg.dim)
        # fairseq initialises mask_emb uniform in [0, 1).
        self.mask_embedding = nn.Parameter(torch.rand(cfg.dim))
        self.transformer = TransformerEncoder(cfg.transformer)

    def forward(self, features: Tensor, pad: Tensor, mask: Tensor | None = None,
                deterministic: bool = False) -> list[Tensor]:
        """Run the encoder.

        Args:
            features: (B, T, input_dim) frames from the frontend.
            pad: (B, T) bool, True at padding.
            mask: (B, T) bool, True at frames to replace with the mask embedding (None: no mask).
            deterministic: no dropout / LayerDrop even in training mode.

        Returns:
            ``num_layers + 1`` tensors (B, T, dim): the Transformer's input (after pos-conv and
            LayerNorm) and every layer's output, 0 at padding.
        """
        x = self.projection(features)
        x = dropout(x, self.cfg.projection_dropout, self.training and not deterministic)
        if mask is not None:
            if mask.shape != pad.shape:
                raise ValueError(f"mask must have shape {tuple(pad.shape)}, got {tuple(mask.shape)}")
            x = torch.where(mask[..., None], self.mask_embedding.to(x.dtype), x)
        return self.transformer(x, pad, deterministic)
