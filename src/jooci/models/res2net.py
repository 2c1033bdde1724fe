"""ECAPA-TDNN building blocks (TDNN, SE-Res2Net, attentive statistics pooling), padding-aware.

The Other encoder (:mod:`jooci.models.other`) and the RDINO teacher (:mod:`jooci.models.speaker`)
are two compositions of these blocks. The block layout follows ECAPA-TDNN as used by 3D-Speaker's
RDINO (Desplanques et al. 2020): conv -> ReLU -> BatchNorm, Res2Net with scale 8, squeeze-excitation
with a 128-d bottleneck, "same" convs with reflect padding.

Everything here works channel-first, ``x: (B, C, T)``, with ``valid: (B, 1, T)`` float (1 at valid
frames) travelling alongside. Padding never enters a statistic: BatchNorm (in training), the SE mean,
the pooling attention and its mean/std use valid frames only, reflect padding reflects at each
item's own last valid frame, and padded positions are zeroed after every block. So an item gives
the same output alone and in a padded batch (in eval mode; BatchNorm in training mode depends on
the batch by design).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class EcapaConfig:
    """A stack of one TDNN block, N SE-Res2Net blocks, MFA and attentive statistics pooling."""

    channels: int = 512  # C: width of every block
    num_blocks: int = 3  # N SE-Res2Net blocks
    first_kernel: int = 5  # the TDNN block's kernel
    kernel: int = 3  # the Res2Net convs' kernel
    dilations: tuple[int, ...] = (2, 3, 4)  # block i uses dilations[i % len]
    scale: int = 8  # Res2Net scale (channel splits)
    se_channels: int = 128  # SE bottleneck
    attention_channels: int = 128  # attentive pooling bottleneck
    mfa_channels: int | None = None  # MFA output channels; None: num_blocks * channels (ECAPA)
    embed_dim: int = 192  # utterance embedding
    global_context: bool = True  # pooling attention also sees the utterance mean and std
    padding_mode: Literal["reflect", "zeros"] = "reflect"  # 3D-Speaker pads "same" convs by reflection

    def __post_init__(self) -> None:
        if self.channels % self.scale:
            raise ValueError(f"channels {self.channels} is not divisible by scale {self.scale}")
        if self.num_blocks < 1:
            raise ValueError("num_blocks must be >= 1")

    @property
    def mfa_dim(self) -> int:
        return self.mfa_channels if self.mfa_channels is not None else self.num_blocks * self.channels


def valid_mask(lengths: Tensor, max_len: int, dtype: torch.dtype) -> Tensor:
    """``(B, 1, max_len)`` float, 1 at valid frames."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None])[:, None, :].to(dtype)


def masked_mean_std(x: Tensor, weights: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Weighted mean and std over time. x: (B, C, T); weights: (B, 1 or C, T) summing to 1 (or 0)."""
    mean = (x * weights).sum(dim=2)
    var = (weights * (x - mean[..., None]) ** 2).sum(dim=2)
    return mean, var.clamp(min=eps).sqrt()


def masked_instance_norm(x: Tensor, valid: Tensor, eps: float = 1e-5) -> Tensor:
    """InstanceNorm1d (no affine) over each item's valid frames. x: (B, C, T)."""
    n = valid.sum(dim=2, keepdim=True).clamp(min=1.0)
    mean = (x * valid).sum(dim=2, keepdim=True) / n
    var = (((x - mean) * valid) ** 2).sum(dim=2, keepdim=True) / n
    return (x - mean) * torch.rsqrt(var + eps) * valid


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics (and running-stat updates) use valid frames only.

    Parameters and buffers are nn.BatchNorm1d's, so foreign weights load by name. In eval mode it
    is the plain per-position affine map with running statistics.
    """

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """x: (B, C, T); valid: (B, 1, T) float or None (all valid)."""
        if valid is None:
            valid = x.new_ones(x.shape[0], 1, x.shape[2])
        if self.training or not self.track_running_stats:
            n = valid.sum()
            nc = n.clamp(min=1.0)
            mean = (x * valid).sum(dim=(0, 2)) / nc
            var = (((x - mean[None, :, None]) * valid) ** 2).sum(dim=(0, 2)) / nc
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    m = self.momentum if self.momentum is not None else 0.1
                    unbiased = var * n / (n - 1).clamp(min=1.0)  # no host sync: n == 1 keeps var (0)
                    self.running_mean.mul_(1 - m).add_(m * mean.detach())  # type: ignore[union-attr]
                    self.running_var.mul_(1 - m).add_(m * unbiased.detach())  # type: ignore[union-attr]
                    self.num_batches_tracked.add_(1)  # type: ignore[union-attr]
        else:
            mean, var = self.running_mean, self.running_var  # type: ignore[assignment]
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)  # type: ignore[index]
        if self.affine:
            y = y * self.weight[None, :, None] + self.bias[None, :, None]
        return y * valid


class SameConv1d(nn.Conv1d):
    """Stride-1 Conv1d whose output has the input's length, padded per item.

    "reflect" reflects at each item's own edges (frame 0 and its last valid frame), which is what
    the item alone would get from ``F.pad(mode="reflect")``; "zeros" relies on the input being 0
    at padding.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int = 1,
                 padding_mode: Literal["reflect", "zeros"] = "reflect", bias: bool = True):
        super().__init__(in_ch, out_ch, kernel, dilation=dilation, bias=bias)
        self.same_pad = dilation * (kernel - 1) // 2
        self.pad_kind = padding_mode

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:  # type: ignore[override]
        """x: (B, C_in, T) with 0 at padding; lengths: (B,). Returns (B, C_out, T)."""
        p = self.same_pad
        if p == 0:
            return super().forward(x)
        if self.pad_kind == "zeros":
            return super().forward(F.pad(x, (p, p)))
        t = x.shape[-1]
        last = (lengths - 1).clamp(min=0)[:, None]  # (B, 1)
        r = torch.arange(-p, t + p, device=x.device)[None, :].expand(x.shape[0], -1)
        r = r.abs()  # reflect at frame 0
        r = torch.where(r > last, 2 * last - r, r)  # reflect at the item's last valid frame
        r = r.clamp(min=0).minimum(last).clamp(max=max(t - 1, 0))
        xp = x.gather(2, r[:, None, :].expand(-1, x.shape[1], -1))
        return super().forward(xp)


class TDNNBlock(nn.Module):
    """SameConv1d -> ReLU -> BatchNorm (3D-Speaker / SpeechBrain order)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int,
                 padding_mode: Literal["reflect", "zeros"]):
        super().__init__()
        self.conv = SameConv1d(in_ch, out_ch, kernel, dilation, padding_mode)
        self.norm = MaskedBatchNorm1d(out_ch)

    def forward(self, x: Tensor, lengths: Tensor, valid: Tensor) -> Tensor:
        return self.norm(F.relu(self.conv(x, lengths)), valid)


class Res2Net(nn.Module):
    """Split channels into ``scale`` chunks; y1 = x1, y2 = f(x2), yi = f(xi + y(i-1)); concat."""

    def __init__(self, channels: int, scale: int, kernel: int, dilation: int,
                 padding_mode: Literal["reflect", "zeros"]):
        super().__init__()
        self.scale = scale
        w = channels // scale
        self.blocks = nn.ModuleList(TDNNBlock(w, w, kernel, dilation, padding_mode) for _ in range(scale - 1))

    def forward(self, x: Tensor, lengths: Tensor, valid: Tensor) -> Tensor:
        chunks = torch.chunk(x, self.scale, dim=1)
        ys = [chunks[0]]
        y = None
        for i, block in enumerate(self.blocks, start=1):
            y = block(chunks[i] if y is None else chunks[i] + y, lengths, valid)
            ys.append(y)
        return torch.cat(ys, dim=1)


class SqueezeExcitation(nn.Module):
    """Channel gates from the mean over valid frames: x * sigmoid(W2 relu(W1 mean(x)))."""

    def __init__(self, channels: int, se_channels: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, se_channels, 1)
        self.conv2 = nn.Conv1d(se_channels, channels, 1)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        s = (x * valid).sum(dim=2, keepdim=True) / valid.sum(dim=2, keepdim=True).clamp(min=1.0)
        return x * torch.sigmoid(self.conv2(F.relu(self.conv1(s))))


class SERes2NetBlock(nn.Module):
    """TDNN 1x1 -> Res2Net (k, dilation) -> TDNN 1x1 -> SE, plus a residual (1x1 conv if widths differ)."""

    def __init__(self, in_ch: int, out_ch: int, scale: int, se_channels: int, kernel: int,
                 dilation: int, padding_mode: Literal["reflect", "zeros"]):
        super().__init__()
        self.tdnn1 = TDNNBlock(in_ch, out_ch, 1, 1, padding_mode)
        self.res2net = Res2Net(out_ch, scale, kernel, dilation, padding_mode)
        self.tdnn2 = TDNNBlock(out_ch, out_ch, 1, 1, padding_mode)
        self.se = SqueezeExcitation(out_ch, se_channels)
        self.shortcut = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: Tensor, lengths: Tensor, valid: Tensor) -> Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        y = self.tdnn2(self.res2net(self.tdnn1(x, lengths, valid), lengths, valid), lengths, valid)
        return (self.se(y, valid) + residual) * valid


def build_se_res2net_blocks(cfg: EcapaConfig, extra_in: int = 0) -> nn.ModuleList:
    """The N SE-Res2Net blocks of ``cfg``; each takes ``channels + extra_in`` input channels."""
    return nn.ModuleList(
        SERes2NetBlock(cfg.channels + extra_in, cfg.channels, cfg.scale, cfg.se_channels, cfg.kernel,
                       cfg.dilations[i % len(cfg.dilations)], cfg.padding_mode)
        for i in range(cfg.num_blocks))


class AttentiveStatisticsPooling(nn.Module):
    """Channel-wise attentive mean and std over valid frames -> (B, 2C)."""

    def __init__(self, channels: int, attention_channels: int, global_context: bool,
                 padding_mode: Literal["reflect", "zeros"]):
        super().__init__()
        self.global_context = global_context
        self.tdnn = TDNNBlock(channels * (3 if global_context else 1), attention_channels, 1, 1, padding_mode)
        self.conv = nn.Conv1d(attention_channels, channels, 1)

    def forward(self, x: Tensor, lengths: Tensor, valid: Tensor) -> Tensor:
        t = x.shape[-1]
        if self.global_context:
            w = valid / valid.sum(dim=2, keepdim=True).clamp(min=1.0)
            mean, std = masked_mean_std(x, w)
            a = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], dim=1)
        else:
            a = x
        logits = self.conv(torch.tanh(self.tdnn(a, lengths, valid)))
        # Padded frames get no weight; an empty item (no valid frame) gets uniform weights over
        # its zeroed frames instead of a NaN softmax.
        empty = valid.sum(dim=2, keepdim=True).eq(0)
        logits = logits.masked_fill((valid == 0) & ~empty, float("-inf"))
        attn = torch.softmax(logits, dim=2)
        mean, std = masked_mean_std(x, attn)
        return torch.cat([mean, std], dim=1)


class EcapaPooling(nn.Module):
    """Multi-layer feature aggregation + attentive statistics pooling + BatchNorm + Linear."""

    def __init__(self, cfg: EcapaConfig):
        super().__init__()
        self.mfa = TDNNBlock(cfg.num_blocks * cfg.channels, cfg.mfa_dim, 1, 1, cfg.padding_mode)
        self.asp = AttentiveStatisticsPooling(cfg.mfa_dim, cfg.attention_channels, cfg.global_context,
                                              cfg.padding_mode)
        self.asp_norm = MaskedBatchNorm1d(2 * cfg.mfa_dim)
        self.fc = nn.Linear(2 * cfg.mfa_dim, cfg.embed_dim)

    def forward(self, block_outputs: list[Tensor], lengths: Tensor, valid: Tensor) -> Tensor:
        """block_outputs: N x (B, C, T) -> embedding (B, embed_dim)."""
        x = self.mfa(torch.cat(block_outputs, dim=1), lengths, valid)
        stats = self.asp(x, lengths, valid)[..., None]  # (B, 2 * mfa, 1)
        stats = self.asp_norm(stats)[..., 0]
        return self.fc(stats)
