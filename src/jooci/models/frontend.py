"""The shared encoder: raw 16 kHz waveform -> frames at 50 Hz, as a CNN or as log-mel.

Two kinds, one output (:class:`FrontendOutput`, 50 Hz, the wav2vec 2.0 frame count):

- ``cnn`` (the paper's and every preset's but ``small``): the 7-layer wav2vec 2.0 CNN below;
- ``mel`` (the ``small`` preset): 80-d Kaldi log-mel on 25 ms windows every 20 ms (MelHuBERT's
  simplification), passed on unnormalised in the small preset (``output_norm=False``; with it, a
  LayerNorm over the bins per frame). A CNN learns its filterbank from raw audio over hundreds of
  thousands of steps; within a CPU demo's few hundred it stays close to random and drops most of
  what tells speakers apart, so the small preset starts from the filterbank instead. Both encoders still share it, as in the paper.

The CNN:

It is the wav2vec 2.0 / HuBERT feature extractor (fairseq ``ConvFeatureExtractionModel``), so
HuBERT weights import unchanged, with one difference that matters for batching: its norms are
padding-aware. In "group" mode HuBERT normalises the first layer's output over time with a
GroupNorm, whose statistics in a zero-padded batch include the padding; the same utterance then
gives different features alone and in a batch (HF transformers #21534, torchaudio #2242). Here the
statistics are taken over each item's valid samples only, and padded positions are zeroed between
layers, so a padded batch gives, up to float error, the features of each item alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jooci.features import frame_lengths, hop_length, log_mel
from jooci.models._util import check_lengths, grad_multiply

ConvSpec = tuple[int, int, int]  # (channels, kernel, stride)

WAV2VEC2_CONV: tuple[ConvSpec, ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
"""fairseq's ``conv_feature_layers`` for every wav2vec 2.0 / HuBERT model: stride 320, field 400."""


@dataclass(frozen=True)
class FrontendConfig:
    """Shared frontend: the CNN (``kind="cnn"``) or log-mel (``"mel"``). CNN field names follow
    fairseq's ``HubertConfig`` where one exists."""

    kind: Literal["cnn", "mel"] = "cnn"  # the wav2vec 2.0 CNN, or log-mel (MelFrontend)
    conv_layers: tuple[ConvSpec, ...] = WAV2VEC2_CONV  # conv_feature_layers
    norm_mode: Literal["group", "layer"] = "group"  # extractor_mode default / layer_norm
    conv_bias: bool = False
    output_norm: bool = True  # LayerNorm over the last conv's channels (fairseq `layer_norm`)
    grad_mult: float = 0.1  # feature_grad_mult: gradient into the CNN is scaled by this
    eps: float = 1e-5
    n_mels: int = 80  # kind "mel" only

    @property
    def dim(self) -> int:
        return self.n_mels if self.kind == "mel" else self.conv_layers[-1][0]

    @property
    def stride(self) -> int:
        if self.kind == "mel":
            return hop_length(50)
        s = 1
        for _, _, st in self.conv_layers:
            s *= st
        return s


def conv_output_lengths(lengths: Tensor, layers: tuple[ConvSpec, ...]) -> Tensor:
    """Absolute frame counts after the convs (no padding): ``floor((L - k) / s) + 1``, at least 0."""
    for _, k, s in layers:
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
        lengths = lengths.clamp(min=0)
    return lengths


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm over (channels in a group x valid time steps) of each item.

    Parameter names are nn.GroupNorm's, so fairseq/HF weights load unchanged.
    """

    def forward(self, x: Tensor, valid: Tensor | None) -> Tensor:  # type: ignore[override]
        """x: (B, C, T); valid: (B, T, 1) float, 1 at valid steps, or None when nothing is padded.
        Returns (B, C, T), 0 at padding."""
        if valid is None:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        b, c, t = x.shape
        g = self.num_groups
        # Sums over time as batched matmuls with the mask: no (B, C, T) temporaries for x * mask.
        count = (valid.sum(dim=1, keepdim=True) * (c // g)).clamp(min=1.0)  # (B, 1, 1)
        mean = (torch.bmm(x, valid).view(b, g, c // g).sum(dim=2, keepdim=True) / count)  # (B, g, 1)
        xc = x - mean.repeat_interleave(c // g, dim=1)
        var = torch.bmm(xc * xc, valid).view(b, g, c // g).sum(dim=2, keepdim=True) / count
        scale = torch.rsqrt(var + self.eps).repeat_interleave(c // g, dim=1)  # (B, C, 1)
        if self.affine:
            scale = scale * self.weight[None, :, None]
            return torch.addcmul(self.bias[None, :, None], xc, scale) * valid.transpose(1, 2)
        return xc * scale * valid.transpose(1, 2)


class ConvLayer(nn.Module):
    """Conv1d (no padding) -> optional norm -> GELU, with the output length."""

    def __init__(self, in_ch: int, spec: ConvSpec, norm: Literal["group", "layer", "none"],
                 bias: bool, eps: float):
        super().__init__()
        out_ch, k, s = spec
        self.kernel, self.stride = k, s
        self.conv = nn.Conv1d(in_ch, out_ch, k, stride=s, bias=bias)
        self.norm_kind = norm
        self.norm: nn.Module | None
        if norm == "group":
            self.norm = MaskedGroupNorm(out_ch, out_ch, eps=eps)  # one group per channel, as fairseq
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_ch, eps=eps)
        else:
            self.norm = None

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, C_in, S) with 0 at padding; returns (B, C_out, T), 0 at padding, and lengths (B,)."""
        x = self.conv(x)
        lengths = (torch.div(lengths - self.kernel, self.stride, rounding_mode="floor") + 1).clamp(min=0)
        t = x.shape[-1]
        # Nothing padded (equal-length crops, single items): plain norms, no masking work.
        padded = bool((lengths < t).any())
        valid = (torch.arange(t, device=x.device)[None, :] < lengths[:, None])[:, :, None].to(x.dtype) \
            if padded else None  # (B, T, 1)
        if self.norm_kind == "group":
            x = self.norm(x, valid)  # type: ignore[misc]
        elif self.norm_kind == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # type: ignore[misc]
        x = F.gelu(x)
        if valid is not None:
            # Zero the padding so the next conv (and any norm statistics) never sees garbage there.
            x = x * valid.transpose(1, 2)
        return x, lengths


@dataclass
class FrontendOutput:
    """features: (B, T, C) normalised frames, 0 at padding; lengths: (B,) frames; penalty: scalar
    mean square of the pre-norm CNN output over valid frames (HuBERT's feature penalty)."""

    features: Tensor
    lengths: Tensor
    penalty: Tensor


class ConvFrontend(nn.Module):
    """The 7-layer wav2vec 2.0 CNN with padding-aware norms (see module docstring)."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        self.cfg = cfg
        layers = []
        in_ch = 1
        for i, spec in enumerate(cfg.conv_layers):
            if cfg.norm_mode == "group":
                norm: Literal["group", "layer", "none"] = "group" if i == 0 else "none"
            else:
                norm = "layer"
            layers.append(ConvLayer(in_ch, spec, norm, cfg.conv_bias, cfg.eps))
            in_ch = spec[0]
        self.conv_layers = nn.ModuleList(layers)
        self.layer_norm = nn.LayerNorm(cfg.dim, eps=cfg.eps) if cfg.output_norm else None

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) frame counts."""
        return conv_output_lengths(lengths, self.cfg.conv_layers)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> FrontendOutput:
        """waveforms: (B, S) float at 16 kHz; lengths: (B,) valid samples (None: all valid)."""
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (batch, samples), got shape {tuple(waveforms.shape)}")
        lengths = check_lengths(waveforms, lengths)
        x = waveforms * (torch.arange(waveforms.shape[1], device=waveforms.device)[None, :] < lengths[:, None])
        x = x[:, None, :]
        if x.shape[-1] < self.cfg.conv_layers[0][1]:  # shorter than one receptive field: no frame
            x = F.pad(x, (0, self.cfg.conv_layers[0][1] - x.shape[-1]))
        grad_mult = self.cfg.grad_mult
        if grad_mult == 0.0:
            with torch.no_grad():
                x, lengths = self._convs(x, lengths)
        else:
            x, lengths = self._convs(x, lengths)
            if grad_mult != 1.0:
                x = grad_multiply(x, grad_mult)
        x = x.transpose(1, 2)  # (B, T, C)
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None])[..., None].to(x.dtype)
        n = (lengths.sum() * x.shape[-1]).clamp(min=1)
        penalty = (x.float() ** 2 * valid).sum() / n
        if self.layer_norm is not None:
            x = self.layer_norm(x) * valid
        return FrontendOutput(x, lengths, penalty)

    def _convs(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        for layer in self.conv_layers:
            if x.shape[-1] < layer.kernel:  # too short for this layer: it yields zero frames
                x = F.pad(x, (0, layer.kernel - x.shape[-1]))
            x, lengths = layer(x, lengths)
        return x, lengths


class MelFrontend(nn.Module):
    """Log-mel frames at 50 Hz, optionally LayerNorm'd over the bins: the ``mel`` kind.

    No weights before the (optional) norm, so nothing to freeze, scale or penalise: ``penalty``
    is 0. Frame counts equal the CNN's (``floor((S - 400) / 320) + 1``, per item and for the
    padded width), so masks, label files and s3prl's downsample rate of 320 hold for both kinds.

    ``output_norm`` True: a LayerNorm per frame keeps the spectral shape (speaker and phone cues)
    but drops each frame's level, and with it loudness, a style cue. False (the small preset):
    the log-mel as it is, the SUPERB fbank floor's input; the Content encoder's projection +
    LayerNorm and the Other encoder's BatchNorm do the scaling downstream.
    """

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        if cfg.kind != "mel":
            raise ValueError(f"MelFrontend needs frontend.kind 'mel', got {cfg.kind!r}")
        self.cfg = cfg
        self.layer_norm = nn.LayerNorm(cfg.n_mels, eps=cfg.eps) if cfg.output_norm else None

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) frame counts."""
        return frame_lengths(lengths, 50)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> FrontendOutput:
        """waveforms: (B, S) float at 16 kHz; lengths: (B,) valid samples (None: all valid)."""
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (batch, samples), got shape {tuple(waveforms.shape)}")
        lengths = check_lengths(waveforms, lengths)
        # fp32 whatever the autocast: the power spectrum spans many decades before the log.
        with torch.no_grad(), torch.autocast(waveforms.device.type, enabled=False):
            x, frames = log_mel(waveforms.float(), lengths, rate=50, num_mel_bins=self.cfg.n_mels)
        frames = frames.to(waveforms.device)
        width = int(frame_lengths(torch.tensor([waveforms.shape[1]]), 50)[0])
        x = F.pad(x, (0, 0, 0, width - x.shape[1]))  # the padded width's frames, as the CNN gives
        if self.layer_norm is not None:
            valid = (torch.arange(x.shape[1], device=x.device)[None, :] < frames[:, None])[..., None].to(x.dtype)
            x = self.layer_norm(x) * valid
        return FrontendOutput(x, frames, x.new_zeros(()))


def build_frontend(cfg: FrontendConfig) -> nn.Module:
    """The frontend ``cfg.kind`` names (one literal table, no registry)."""
    return {"cnn": ConvFrontend, "mel": MelFrontend}[cfg.kind](cfg)
