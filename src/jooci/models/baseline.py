"""The HuBERT baseline: the same shared CNN, Content encoder and cluster heads as JOOCI, no Other
encoder. It is the ``content`` training phase on its own, and the target of HuBERT weight imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from jooci.configio import from_dict as config_from_dict, to_dict as config_to_dict
from jooci.models._util import padding_mask
from jooci.models.content import ContentConfig, ContentEncoder
from jooci.models.folder import Pretrained
from jooci.models.frontend import FrontendConfig, build_frontend
from jooci.models.heads import ClusterHeadsConfig, MultiClusterHead
from jooci.models.jooci import Preset, jooci_config
from jooci.models.outputs import BaselineOutput, FeatureOutput


@dataclass(frozen=True)
class BaselineConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    clusters: ClusterHeadsConfig = field(default_factory=ClusterHeadsConfig)

    def __post_init__(self) -> None:
        if self.content.input_dim != self.frontend.dim:
            raise ValueError(f"BaselineConfig: content.input_dim {self.content.input_dim} != "
                             f"frontend dim {self.frontend.dim}")
        if self.clusters.dim != self.content.dim:
            raise ValueError(f"BaselineConfig: clusters.dim {self.clusters.dim} != content dim {self.content.dim}")
        if max(self.clusters.layers) > self.content.num_layers:
            raise ValueError(f"BaselineConfig: clusters.layers {self.clusters.layers} exceed the "
                             f"{self.content.num_layers} Content layers")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaselineConfig:
        return config_from_dict(cls, d)


def baseline_config(preset: Preset) -> BaselineConfig:
    """The baseline part of JOOCI's preset of the same name (identical frontend, Content, heads)."""
    j = jooci_config(preset)
    return BaselineConfig(j.frontend, j.content, j.clusters)


class HuBERTBaseline(Pretrained, nn.Module):
    """Shared CNN + Content encoder + multi-set cluster heads."""

    model_type = "hubert_baseline"
    config_class = BaselineConfig

    def __init__(self, cfg: BaselineConfig):
        super().__init__()
        self.cfg = cfg
        self.frontend = build_frontend(cfg.frontend)
        self.content = ContentEncoder(cfg.content)
        self.cluster_heads = MultiClusterHead(cfg.clusters)

    @classmethod
    def from_preset(cls, preset: Preset) -> HuBERTBaseline:
        return cls(baseline_config(preset))

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) 50 Hz frame counts (for building frame masks before forward)."""
        return self.frontend.output_lengths(lengths)

    @property
    def num_hidden_states(self) -> int:
        """How many hidden states :meth:`extract_features` returns: 1 + Content layers."""
        return 1 + self.cfg.content.num_layers

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None,
                mask: Tensor | None = None) -> BaselineOutput:
        """waveforms: (B, S); lengths: (B,) samples; mask: (B, T) bool frames to mask (or None)."""
        fe = self.frontend(waveforms, lengths)
        pad = padding_mask(fe.lengths, fe.features.shape[1])
        states = self.content(fe.features, pad, mask)
        return BaselineOutput(self.cluster_heads(states), states, fe.lengths, pad, fe.penalty)

    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None) -> FeatureOutput:
        """``L + 1`` hidden states (B, T, D) (HF's ``output_hidden_states`` placement); no embedding."""
        fe = self.frontend(waveforms, lengths)
        pad = padding_mask(fe.lengths, fe.features.shape[1])
        states = self.content(fe.features, pad, None, deterministic=True)
        return FeatureOutput(list(states), list(states), [], fe.lengths, pad, None)

    def upstream_modules(self) -> dict[str, nn.Module]:
        return {"frontend": self.frontend, "content": self.content}
