"""Post-LN Transformer encoder with a convolutional positional embedding (HuBERT-Base layout).

The parts are the fairseq ``TransformerEncoder`` / HF ``HubertEncoder`` ones, written as injected
modules in torchaudio's style: a layer receives its attention and feed-forward modules, the encoder
receives its positional embedding and layers. Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` with a key padding mask, except where
attention dropout is active on the CPU: there SDPA falls back to its unfused math path with
``bernoulli_`` masks, and the same math is written out here with :func:`jooci.models._util.dropout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from jooci.models._util import dropout


@dataclass(frozen=True)
class TransformerConfig:
    """Transformer encoder. Defaults are HuBERT-Base (fairseq field names in comments)."""

    dim: int = 768  # encoder_embed_dim
    num_layers: int = 12  # encoder_layers
    num_heads: int = 12  # encoder_attention_heads
    ffn_dim: int = 3072  # encoder_ffn_embed_dim
    dropout: float = 0.1  # dropout (residual branches, after pos-conv + LayerNorm)
    attention_dropout: float = 0.1  # attention_dropout
    activation_dropout: float = 0.0  # activation_dropout
    layerdrop: float = 0.05  # encoder_layerdrop, training only
    pos_conv_kernel: int = 128  # conv_pos
    pos_conv_groups: int = 16  # conv_pos_groups
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.dim % self.pos_conv_groups:
            raise ValueError(f"dim {self.dim} is not divisible by pos_conv_groups {self.pos_conv_groups}")


class ConvPositionalEmbedding(nn.Module):
    """Grouped Conv1d over time with weight norm (dim 2), "same" padding, GELU.

    An even kernel with padding k//2 gives one frame too many; the last one is dropped (fairseq's
    ``SamePad``), so output frame t sees input frames t-k/2 .. t+k/2-1.
    """

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        # fairseq-style init (normal, std sqrt(4 / (k * dim)); bias 0), then weight norm over dim 2.
        nn.init.normal_(conv.weight, mean=0.0, std=(4.0 / (kernel * dim)) ** 0.5)
        nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, D) with 0 at padding -> (B, T, D)."""
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention (q, k, v, out projections with bias, as fairseq/HF)."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None, dropout_active: bool) -> Tensor:
        """x: (B, T, D); attn_mask: (B, 1, 1, T) bool, True where a key may be attended."""
        b, t, d = x.shape
        h = self.num_heads

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, h, d // h).transpose(1, 2)  # (B, h, T, D/h)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        if dropout_active and self.dropout > 0 and x.device.type == "cpu":
            scores = (q * (d // h) ** -0.5) @ k.transpose(-1, -2)
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            out = dropout(scores.softmax(dim=-1), self.dropout, True) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                                 dropout_p=self.dropout if dropout_active else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear."""

    def __init__(self, dim: int, ffn_dim: int, activation_dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.activation_dropout = activation_dropout

    def forward(self, x: Tensor, dropout_active: bool) -> Tensor:
        x = dropout(F.gelu(self.fc1(x)), self.activation_dropout, dropout_active)
        return self.fc2(x)


class EncoderLayer(nn.Module):
    """Post-LN block: x = LN(x + attn(x)); x = LN(x + ffn(x)) (fairseq ``layer_norm_first=False``)."""

    def __init__(self, attention: SelfAttention, feed_forward: FeedForward, dim: int,
                 dropout: float, eps: float):
        super().__init__()
        self.attention = attention
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = feed_forward
        self.final_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = dropout

    def forward(self, x: Tensor, attn_mask: Tensor | None, dropout_active: bool) -> Tensor:
        a = self.attention(x, attn_mask, dropout_active)
        x = self.attention_norm(x + dropout(a, self.dropout, dropout_active))
        f = self.feed_forward(x, dropout_active)
        return self.final_norm(x + dropout(f, self.dropout, dropout_active))


class TransformerEncoder(nn.Module):
    """pos-conv embedding (added) -> LayerNorm -> dropout -> layers; returns every layer's output."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.pos_conv = ConvPositionalEmbedding(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        self.layer_norm = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.layers = nn.ModuleList(
            EncoderLayer(SelfAttention(cfg.dim, cfg.num_heads, cfg.attention_dropout),
                         FeedForward(cfg.dim, cfg.ffn_dim, cfg.activation_dropout),
                         cfg.dim, cfg.dropout, cfg.eps)
            for _ in range(cfg.num_layers))
        # BERT init (fairseq `init_bert_params`, HF `_init_weights`): Linear ~ N(0, 0.02), bias 0.
        # PyTorch's default fan-in init makes the post-LN stack harder to train from scratch.
        for m in self.layers.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, pad: Tensor, deterministic: bool = False) -> list[Tensor]:
        """x: (B, T, D); pad: (B, T) True at padding.

        Returns ``num_layers + 1`` tensors (B, T, D), 0 at padding: the input of the first layer
        (after pos-conv and LayerNorm, HF's ``hidden_states[0]``) and each layer's output.
        ``deterministic`` switches dropout and LayerDrop off even in training mode (used for the
        no-grad Content pass that feeds the Other encoder). A layer dropped by LayerDrop passes its
        input through, so the list always has one entry per layer and indices never shift.
        """
        active = self.training and not deterministic
        keep = (~pad)[..., None].to(x.dtype)
        x = x * keep  # padded frames must not leak into the pos-conv of valid ones
        x = self.layer_norm(x + self.pos_conv(x))
        x = dropout(x, self.cfg.dropout, active)
        # Keys at padding get no weight. A zero-length item would have no key at all (NaN rows in
        # SDPA): it attends to everything instead, and its output is zeroed below anyway.
        key_ok = ~pad | (~pad).sum(dim=1, keepdim=True).eq(0)
        attn_mask = key_ok[:, None, None, :]
        states = [x * keep]
        for layer in self.layers:
            if active and self.cfg.layerdrop > 0 and torch.rand(()) < self.cfg.layerdrop:
                states.append(states[-1])
                continue
            x = layer(x, attn_mask, active)
            states.append(x * keep)
        return states
