"""The Other encoder: ECAPA-style SE-Res2Net stack over the shared CNN frames, with split-and-append.

Split-and-append (JOOCI's link between the encoders): the L Content layer outputs are split into N
contiguous groups, one per SE-Res2Net block (base: layers 1-4 -> block 1, 5-8 -> block 2, 9-12 ->
block 3). Each group is averaged, **detached** (the Other losses never reach the Content encoder),
projected by a 1x1 conv to ``append_dim`` channels and concatenated to that block's input. Every
block's frame output has the Content width, so it is exposed as a hidden state beside the Content
layers (one width, one frame rate: what s3prl's weighted sum needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from jooci.models.res2net import EcapaConfig, EcapaPooling, TDNNBlock, build_se_res2net_blocks, valid_mask


@dataclass(frozen=True)
class OtherConfig:
    """Other encoder. ``ecapa.channels`` must equal the Content width (checked by JOOCIConfig)."""

    input_dim: int = 512  # the frontend's channels
    content_dim: int = 768  # width of the appended Content states
    append_dim: int = 128  # channels each block gets from its Content group (0: no append)
    ecapa: EcapaConfig = field(default_factory=lambda: EcapaConfig(channels=768))


def split_groups(num_layers: int, num_groups: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal 1-based layer ranges [first, last]; earlier groups get the extra layers.

    >>> split_groups(12, 3)
    [(1, 4), (5, 8), (9, 12)]
    """
    if num_groups > num_layers:
        raise ValueError(f"cannot split {num_layers} Content layers into {num_groups} groups")
    base, extra = divmod(num_layers, num_groups)
    out, start = [], 1
    for g in range(num_groups):
        size = base + (1 if g < extra else 0)
        out.append((start, start + size - 1))
        start += size
    return out


@dataclass
class OtherOutput:
    """states: N x (B, T, C) block outputs, 0 at padding; embedding: (B, embed_dim)."""

    states: list[Tensor]
    embedding: Tensor


class OtherEncoder(nn.Module):
    """CNN frames (B, T, input_dim) + Content layers -> block states (B, T, C) and an embedding."""

    def __init__(self, cfg: OtherConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.ecapa
        self.tdnn = TDNNBlock(cfg.input_dim, e.channels, e.first_kernel, 1, e.padding_mode)
        self.append_proj = nn.ModuleList(
            nn.Conv1d(cfg.content_dim, cfg.append_dim, 1) for _ in range(e.num_blocks)
        ) if cfg.append_dim > 0 else None
        self.blocks = build_se_res2net_blocks(e, extra_in=cfg.append_dim)
        self.pooling = EcapaPooling(e)

    def forward(self, features: Tensor, lengths: Tensor, content_layers: list[Tensor] | None,
                detach: bool = True) -> OtherOutput:
        """Run the encoder.

        Args:
            features: (B, T, input_dim) frontend frames.
            lengths: (B,) valid frames.
            content_layers: the L Content layer outputs, each (B, T, content_dim) (not the
                pre-layer input). None only when ``append_dim`` is 0.
            detach: cut the gradient into the Content states (the paper's stop-gradient; False
                only for the ablation that lets Other losses reach the Content encoder).

        Returns:
            :class:`OtherOutput`.
        """
        valid = valid_mask(lengths, features.shape[1], features.dtype)
        x = self.tdnn(features.transpose(1, 2) * valid, lengths, valid)
        groups: list[Tensor | None] = [None] * len(self.blocks)
        if self.append_proj is not None:
            if not content_layers:
                raise ValueError("this Other encoder appends Content states: pass content_layers")
            for g, (a, b) in enumerate(split_groups(len(content_layers), len(self.blocks))):
                # Detached: split-and-append shares features forward only; no gradient goes back.
                mean = torch.stack(content_layers[a - 1:b]).mean(dim=0)
                mean = mean.detach() if detach else mean
                groups[g] = self.append_proj[g](mean.transpose(1, 2)) * valid
        outs = []
        for block, group in zip(self.blocks, groups):
            inp = x if group is None else torch.cat([x, group], dim=1)
            x = block(inp, lengths, valid)
            outs.append(x)
        embedding = self.pooling(outs, lengths, valid)
        return OtherOutput([o.transpose(1, 2) for o in outs], embedding)
