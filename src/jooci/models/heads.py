"""Training heads: multi-set cluster prediction, DINO head, gradient reversal, regulariser decoders.

None of these count as the upstream model (they are dropped for feature extraction), and none
computes a loss: they return logits / features for the pure loss functions in ``jooci.losses``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from jooci.models._util import grad_multiply


# ----------------------------------------------------------------------------- cluster prediction

@dataclass(frozen=True)
class ClusterHeadsConfig:
    """One predictor per label set: set i has ``num_clusters[i]`` clusters, read from Content layer
    ``layers[i]`` (1-based layer output; base: K 100/500/1000 from layers 5/9/12, the finest set
    from the top, as the first author's multi-layer HuBERT fork)."""

    dim: int = 768  # Content width
    num_clusters: tuple[int, ...] = (100, 500, 1000)
    layers: tuple[int, ...] = (5, 9, 12)
    proj_dim: int = 256  # fairseq final_dim
    temperature: float = 0.1  # fairseq logit_temp

    def __post_init__(self) -> None:
        if len(self.num_clusters) != len(self.layers):
            raise ValueError(f"{len(self.num_clusters)} label sets but {len(self.layers)} layers")
        if not self.num_clusters:
            raise ValueError("at least one label set is needed")


class ClusterPredictor(nn.Module):
    """Linear dim -> proj_dim and a codebook (K, proj_dim); logits = cosine / temperature."""

    def __init__(self, dim: int, proj_dim: int, num_clusters: int, temperature: float):
        super().__init__()
        self.proj = nn.Linear(dim, proj_dim)
        self.codebook = nn.Parameter(torch.empty(num_clusters, proj_dim))
        nn.init.uniform_(self.codebook)  # fairseq label_embs_concat init
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, dim) -> logits (B, T, K)."""
        p = F.normalize(self.proj(x), dim=-1, eps=1e-8)
        c = F.normalize(self.codebook, dim=-1, eps=1e-8)
        return p @ c.t() / self.temperature


class MultiClusterHead(nn.Module):
    """One :class:`ClusterPredictor` per label set, each on its own Content layer."""

    def __init__(self, cfg: ClusterHeadsConfig):
        super().__init__()
        self.cfg = cfg
        self.predictors = nn.ModuleList(
            ClusterPredictor(cfg.dim, cfg.proj_dim, k, cfg.temperature) for k in cfg.num_clusters)

    def forward(self, content_states: list[Tensor]) -> list[Tensor]:
        """content_states: L + 1 tensors (index 0 = Transformer input). Returns one (B, T, K_i) per set."""
        n = len(content_states) - 1
        if max(self.cfg.layers) > n:
            raise ValueError(f"label sets read layers {self.cfg.layers}, the encoder has {n}")
        return [pred(content_states[layer]) for pred, layer in zip(self.predictors, self.cfg.layers)]


# ----------------------------------------------------------------------------- DINO head

@dataclass(frozen=True)
class DINOHeadConfig:
    """RDINO's projection head: MLP (BN, GELU) -> features -> bottleneck -> L2 -> prototypes."""

    in_dim: int = 192
    hidden_dim: int = 2048
    num_layers: int = 3  # Linear layers in the MLP
    feature_dim: int = 8192  # MLP output (RDINO add_dim): the regulariser's variance/covariance input
    bottleneck_dim: int = 256
    out_dim: int = 65536  # prototypes
    use_bn: bool = True
    norm_last_layer: bool = True  # prototype norms fixed to 1 (weight_g frozen)


@dataclass
class DINOHeadOutput:
    """features: (B, feature_dim) MLP output; logits: (B, out_dim) prototype scores."""

    features: Tensor
    logits: Tensor


class DINOHead(nn.Module):
    """MLP -> features; Linear -> bottleneck, L2-normalised; weight-normed Linear -> logits."""

    def __init__(self, cfg: DINOHeadConfig):
        super().__init__()
        self.cfg = cfg
        dims = [cfg.in_dim] + [cfg.hidden_dim] * (cfg.num_layers - 1) + [cfg.feature_dim]
        layers: list[nn.Module] = []
        for i in range(cfg.num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < cfg.num_layers - 1:
                if cfg.use_bn:
                    layers.append(nn.BatchNorm1d(dims[i + 1]))
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.bottleneck = nn.Linear(cfg.feature_dim, cfg.bottleneck_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.prototypes = weight_norm(nn.Linear(cfg.bottleneck_dim, cfg.out_dim, bias=False), dim=0)
        g = self.prototypes.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        if cfg.norm_last_layer:
            g.requires_grad_(False)

    def forward(self, x: Tensor) -> DINOHeadOutput:
        """x: (B, in_dim) embeddings."""
        feats = self.mlp(x)
        z = F.normalize(self.bottleneck(feats), dim=-1, eps=1e-8)
        return DINOHeadOutput(feats, self.prototypes(z))


# ----------------------------------------------------------------------------- gradient reversal

def grad_reverse(x: Tensor, lambd: float = 1.0) -> Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): identity forward, gradient times ``-lambd``
    backward; the DANN ramp of ``lambd`` is computed by the caller."""
    return grad_multiply(x, -lambd)


# ----------------------------------------------------------------------------- regulariser decoders

@dataclass(frozen=True)
class RegulariserConfig:
    """Content-adversarial decoder: Other frame states -> GRL -> MLP -> Content cluster logits."""

    dim: int = 768  # Other width
    hidden_dim: int = 256
    num_clusters: int = 500  # the label set it predicts (the caller picks which)


class ContentAdversary(nn.Module):
    """Predicts Content cluster labels from the mean of the Other block states, behind a GRL.

    The decoder learns to read content from the Other stream; the reversed gradient makes the
    Other encoder remove it (so Other does not duplicate Content). The mean over blocks lets the
    reversed gradient reach every Other hidden state directly.
    """

    def __init__(self, cfg: RegulariserConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden_dim), nn.GELU(),
                                 nn.Linear(cfg.hidden_dim, cfg.num_clusters))

    def forward(self, other_states: list[Tensor], lambd: float) -> Tensor:
        """other_states: N x (B, T, dim) -> logits (B, T, num_clusters). ``lambd`` 0: the decoder
        learns and no gradient reaches the states (the ``confusion`` objective's decoder pass)."""
        x = torch.stack(other_states).mean(dim=0)
        return self.net(grad_reverse(x, lambd))

    def confusion_logits(self, other_states: list[Tensor]) -> Tensor:
        """The same decoder with its weights held fixed: the gradient reaches the Other states only
        (the encoder's pass of the ``confusion`` objective, ``losses.adversary``)."""
        x = torch.stack(other_states).mean(dim=0)
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        return torch.func.functional_call(self.net, params, (x,))


@dataclass(frozen=True)
class MelDecoderConfig:
    """Log-mel reconstruction decoder (no reversal); off by default, for ablations."""

    dim: int = 768
    hidden_dim: int = 256
    n_mels: int = 80


class MelDecoder(nn.Module):
    """Last Other block state (B, T, dim) -> log-mel (B, T, n_mels) at the 50 Hz frame rate."""

    def __init__(self, cfg: MelDecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden_dim), nn.GELU(),
                                 nn.Linear(cfg.hidden_dim, cfg.n_mels))

    def forward(self, other_states: list[Tensor]) -> Tensor:
        return self.net(other_states[-1])
