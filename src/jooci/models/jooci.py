"""JOOCI: shared CNN -> Content Transformer and Other SE-Res2Net encoder, plus training heads.

A composition of injected parts (torchaudio's wav2vec2 style); the HuBERT baseline
(:mod:`jooci.models.baseline`) is another composition of the same parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from jooci.configio import from_dict as config_from_dict, to_dict as config_to_dict
from jooci.models._util import padding_mask
from jooci.models.content import ContentConfig, ContentEncoder
from jooci.models.folder import Pretrained
from jooci.models.frontend import FrontendConfig, build_frontend
from jooci.models.heads import (
    ClusterHeadsConfig, ContentAdversary, DINOHead, DINOHeadConfig, MelDecoder, MelDecoderConfig,
    MultiClusterHead, RegulariserConfig)
from jooci.models.other import OtherConfig, OtherEncoder
from jooci.models.outputs import FeatureOutput, JOOCIOutput, OtherForwardOutput
from jooci.models.res2net import EcapaConfig
from jooci.models.transformer import TransformerConfig

Preset = Literal["tiny", "small", "base"]


@dataclass(frozen=True)
class JOOCIConfig:
    """The whole model; each part gets only its own child config."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    other: OtherConfig = field(default_factory=OtherConfig)
    clusters: ClusterHeadsConfig = field(default_factory=ClusterHeadsConfig)
    dino: DINOHeadConfig = field(default_factory=DINOHeadConfig)
    regulariser: RegulariserConfig = field(default_factory=RegulariserConfig)
    regulariser_label_set: int = -1  # which label set the adversary predicts (default: the last)
    mel_decoder: MelDecoderConfig | None = None  # log-mel reconstruction decoder, off by default
    # Content states for split-and-append: a separate unmasked, deterministic no-grad pass
    # ("unmasked", what inference sees) or the masked training pass, detached ("masked", cheaper).
    append_source: Literal["unmasked", "masked"] = "unmasked"
    # Ablation only: let the Other losses reach the Content encoder through the appended states
    # (the paper's split-and-append is forward-only). Uses the training pass's own states.
    append_gradient: bool = False

    def __post_init__(self) -> None:
        d, c = self.frontend.dim, self.content.dim
        checks = [
            (self.content.input_dim == d, f"content.input_dim {self.content.input_dim} != frontend dim {d}"),
            (self.other.input_dim == d, f"other.input_dim {self.other.input_dim} != frontend dim {d}"),
            (self.other.content_dim == c, f"other.content_dim {self.other.content_dim} != content dim {c}"),
            (self.other.ecapa.channels == c,
             f"other.ecapa.channels {self.other.ecapa.channels} != content dim {c} (hidden states share one width)"),
            (self.clusters.dim == c, f"clusters.dim {self.clusters.dim} != content dim {c}"),
            (max(self.clusters.layers) <= self.content.num_layers,
             f"clusters.layers {self.clusters.layers} exceed the {self.content.num_layers} Content layers"),
            (self.dino.in_dim == self.other.ecapa.embed_dim,
             f"dino.in_dim {self.dino.in_dim} != other embed_dim {self.other.ecapa.embed_dim}"),
            (self.regulariser.dim == c, f"regulariser.dim {self.regulariser.dim} != content dim {c}"),
            (-len(self.clusters.num_clusters) <= self.regulariser_label_set < len(self.clusters.num_clusters),
             f"regulariser_label_set {self.regulariser_label_set} is not a label set index"),
            (self.other.ecapa.num_blocks <= self.content.num_layers,
             f"{self.other.ecapa.num_blocks} Other blocks need at least as many Content layers"),
        ]
        if self.mel_decoder is not None:
            checks.append((self.mel_decoder.dim == c, f"mel_decoder.dim {self.mel_decoder.dim} != {c}"))
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"JOOCIConfig: {msg}")
        k = self.clusters.num_clusters[self.regulariser_label_set]
        if self.regulariser.num_clusters != k:
            raise ValueError(f"JOOCIConfig: regulariser.num_clusters {self.regulariser.num_clusters} != "
                             f"{k}, the size of label set {self.regulariser_label_set}")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JOOCIConfig:
        """Strict: unknown keys raise ConfigError naming them."""
        return config_from_dict(cls, d)


def _tiny() -> JOOCIConfig:
    conv = ((64, 10, 5),) + ((64, 3, 2),) * 4 + ((64, 2, 2),) * 2
    return JOOCIConfig(
        frontend=FrontendConfig(conv_layers=conv),
        content=ContentConfig(input_dim=64, transformer=TransformerConfig(
            dim=64, num_layers=2, num_heads=4, ffn_dim=128, pos_conv_kernel=16, pos_conv_groups=4)),
        other=OtherConfig(input_dim=64, content_dim=64, append_dim=16, ecapa=EcapaConfig(
            channels=64, num_blocks=2, se_channels=16, attention_channels=16, embed_dim=32)),
        clusters=ClusterHeadsConfig(dim=64, num_clusters=(10, 20), layers=(1, 2), proj_dim=32),
        dino=DINOHeadConfig(in_dim=32, hidden_dim=64, feature_dim=64, bottleneck_dim=32, out_dim=128),
        regulariser=RegulariserConfig(dim=64, hidden_dim=32, num_clusters=20),
    )


def _small() -> JOOCIConfig:
    # A log-mel frontend, not the CNN: in the CPU demo's few hundred steps a raw-audio CNN stays
    # near its random start and hides most speaker information from both encoders.
    # Unnormalised: a per-frame LayerNorm would drop loudness, a style cue.
    # `model.frontend.kind=cnn` (+ the two input_dims) restores the paper's CNN.
    return JOOCIConfig(
        frontend=FrontendConfig(kind="mel", n_mels=80, output_norm=False),
        content=ContentConfig(input_dim=80, transformer=TransformerConfig(
            dim=256, num_layers=4, num_heads=4, ffn_dim=1024, pos_conv_kernel=64, pos_conv_groups=16)),
        other=OtherConfig(input_dim=80, content_dim=256, append_dim=64, ecapa=EcapaConfig(
            channels=256, num_blocks=2, se_channels=64, attention_channels=64, embed_dim=128)),
        clusters=ClusterHeadsConfig(dim=256, num_clusters=(50, 100), layers=(2, 4), proj_dim=128),
        dino=DINOHeadConfig(in_dim=128, hidden_dim=512, feature_dim=1024, bottleneck_dim=128, out_dim=4096),
        regulariser=RegulariserConfig(dim=256, hidden_dim=128, num_clusters=100),
    )


def _base() -> JOOCIConfig:
    return JOOCIConfig(
        other=OtherConfig(input_dim=512, content_dim=768, append_dim=128,
                          ecapa=EcapaConfig(channels=768, num_blocks=3, embed_dim=192)),
        regulariser=RegulariserConfig(dim=768, hidden_dim=256, num_clusters=1000),
    )


def jooci_config(preset: Preset) -> JOOCIConfig:
    """The preset configs: "tiny" (tests), "small" (CPU demo), "base" (paper scale)."""
    presets = {"tiny": _tiny, "small": _small, "base": _base}
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(presets)}")
    return presets[preset]()


class JOOCI(Pretrained, nn.Module):
    """Shared CNN + Content encoder + Other encoder (+ training heads)."""

    model_type = "jooci"
    config_class = JOOCIConfig

    def __init__(self, cfg: JOOCIConfig):
        super().__init__()
        self.cfg = cfg
        self.frontend = build_frontend(cfg.frontend)
        self.content = ContentEncoder(cfg.content)
        self.other = OtherEncoder(cfg.other)
        self.cluster_heads = MultiClusterHead(cfg.clusters)
        self.dino_head = DINOHead(cfg.dino)
        self.regulariser = ContentAdversary(cfg.regulariser)
        self.mel_decoder = MelDecoder(cfg.mel_decoder) if cfg.mel_decoder is not None else None

    @classmethod
    def from_preset(cls, preset: Preset) -> JOOCI:
        return cls(jooci_config(preset))

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) 50 Hz frame counts (for building frame masks before forward)."""
        return self.frontend.output_lengths(lengths)

    @property
    def num_hidden_states(self) -> int:
        """How many hidden states :meth:`extract_features` returns: 1 + Content layers + Other blocks."""
        return 1 + self.cfg.content.num_layers + self.cfg.other.ecapa.num_blocks

    def _append_states(self, feats: Tensor, pad: Tensor, masked_states: list[Tensor] | None,
                       had_mask: bool) -> list[Tensor] | None:
        if self.cfg.other.append_dim == 0:  # ablation without split-and-append: no Content pass needed
            return None
        if self.cfg.append_gradient:  # ablation: the states keep their graph back into Content
            return (masked_states if masked_states is not None else self.content(feats, pad, None))[1:]
        if masked_states is not None and (not had_mask or self.cfg.append_source == "masked"):
            return [s.detach() for s in masked_states[1:]]
        with torch.no_grad():
            return self.content(feats.detach(), pad, None, deterministic=True)[1:]

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None,
                grl_lambda: float = 1.0, dino: bool = True, other_trains_frontend: bool = True) -> JOOCIOutput:
        """Training forward.

        Args:
            waveforms: (B, S) 16 kHz audio, zero-padded; lengths: (B,) valid samples.
            mask: (B, T) bool frame mask for masked prediction (True: replace with the mask
                embedding), T = ``frame_lengths(S)``; None: no masking.
            grl_lambda: gradient-reversal strength for the regulariser decoder.
            dino: run the DINO head on the embedding (False: ``dino`` is None). The training steps
                distil on crops, not on the full batch, so they skip it here; its BatchNorm also
                cannot train on a batch of one utterance.
            other_trains_frontend: let the losses on this pass's Other outputs (the adversary, the
                reconstruction) reach the shared frontend; False: the Other encoder reads the
                frontend's output detached (its own weights still learn). The Content losses train
                the frontend either way.
        """
        fe = self.frontend(waveforms, lengths)
        pad = padding_mask(fe.lengths, fe.features.shape[1])
        content_states = self.content(fe.features, pad, mask)
        append = self._append_states(fe.features, pad, content_states, mask is not None)
        other = self.other(_gated(fe.features, other_trains_frontend), fe.lengths, append,
                           detach=not self.cfg.append_gradient)
        return JOOCIOutput(
            cluster_logits=self.cluster_heads(content_states),
            content_states=content_states,
            other_states=other.states,
            embedding=other.embedding,
            dino=self.dino_head(other.embedding) if dino else None,
            regulariser_logits=self.regulariser(other.states, grl_lambda),
            mel=self.mel_decoder(other.states) if self.mel_decoder is not None else None,
            lengths=fe.lengths,
            padding_mask=pad,
            features_penalty=fe.penalty,
        )

    def forward_other(self, waveforms: Tensor, lengths: Tensor | None = None, grl_lambda: float = 1.0,
                      dino: bool = True, regulariser: bool = True,
                      other_trains_frontend: bool = True) -> OtherForwardOutput:
        """The Other branch alone (RDINO crops, phase 1): the Content pass runs without gradient.

        ``dino`` / ``regulariser``: run that head (False: its output is None). The training steps
        need the DINO head on the crops only and the regulariser on the full batch only.
        ``other_trains_frontend``: as in :meth:`forward` (False: nothing here trains the frontend).
        """
        fe = self.frontend(waveforms, lengths)
        pad = padding_mask(fe.lengths, fe.features.shape[1])
        append = self._append_states(fe.features, pad, None, False)
        other = self.other(_gated(fe.features, other_trains_frontend), fe.lengths, append,
                           detach=not self.cfg.append_gradient)
        return OtherForwardOutput(other.states, other.embedding, self.dino_head(other.embedding) if dino else None,
                                  self.regulariser(other.states, grl_lambda) if regulariser else None,
                                  fe.lengths, pad)

    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None) -> FeatureOutput:
        """Hidden states for downstream use (call ``model.eval()`` first: BatchNorm then uses its
        running statistics). No masking, dropout or LayerDrop.

        Returns ``1 + L + N`` hidden states (B, T, D): Transformer input, L Content layers,
        N Other blocks; plus the utterance embedding (B, E).
        """
        fe = self.frontend(waveforms, lengths)
        pad = padding_mask(fe.lengths, fe.features.shape[1])
        content_states = self.content(fe.features, pad, None, deterministic=True)
        append = content_states[1:] if self.cfg.other.append_dim > 0 else None
        other = self.other(fe.features, fe.lengths, append)
        return FeatureOutput(content_states + other.states, content_states, other.states,
                             fe.lengths, pad, other.embedding)

    def upstream_modules(self) -> dict[str, nn.Module]:
        """The parts kept for feature extraction (the rest are training-only heads)."""
        return {"frontend": self.frontend, "content": self.content, "other": self.other}


def _gated(features: Tensor, gradient: bool) -> Tensor:
    """The frontend's output as the Other encoder reads it: with or without a path back."""
    return features if gradient else features.detach()


def with_untrained_other(model: JOOCI, seed: int) -> JOOCI:
    """``model`` with its Other encoder re-initialised from ``seed`` (in place; returned).

    A control for evaluations: frontend and Content are untouched (Content never reads the Other
    encoder), so the difference from the trained model is what training taught the Other
    encoder, apart from the features a second encoder adds by being there.
    The caller's random stream is not consumed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = OtherEncoder(model.cfg.other)
    model.other.load_state_dict(fresh.state_dict())
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameter counts per part; "upstream" is frontend + Content (+ Other), heads excluded."""
    out: dict[str, int] = {}
    upstream = 0
    for name in ("frontend", "content", "other"):
        part = getattr(model, name, None)
        if part is not None:
            out[name] = count_parameters(part)
            upstream += out[name]
    out["upstream"] = upstream
    for name, part in model.named_children():
        if name not in ("frontend", "content", "other"):
            out[f"{name} (training only)"] = count_parameters(part)
    return out


def print_parameter_breakdown(preset: Preset = "base") -> dict[str, int]:
    """Print and return the breakdown of ``JOOCI.from_preset(preset)``, built on the meta device
    (no memory, no init cost)."""
    with torch.device("meta"):
        model = JOOCI.from_preset(preset)
    counts = parameter_breakdown(model)
    # Finer view of the Other encoder: blocks, appends, pooling.
    other = model.other
    counts["other.tdnn"] = count_parameters(other.tdnn)
    counts["other.append_proj"] = count_parameters(other.append_proj) if other.append_proj is not None else 0
    counts["other.blocks"] = count_parameters(other.blocks)
    counts["other.pooling"] = count_parameters(other.pooling)
    width = max(len(k) for k in counts)
    print(f"JOOCI {preset}: parameters")
    for k, v in counts.items():
        print(f"  {k:<{width}}  {v:>12,d}  ({v / 1e6:.2f}M)")
    return counts
