"""The learned weighted sum of hidden states (SUPERB's "Featurizer"), and which states it sees.

Same contract as s3prl's ``Featurizer`` (``s3prl/nn/upstream.py``): every selected state has one
width and one frame rate; the weights are a softmax over parameters initialised to zero (uniform,
s3prl issue #187); an optional parameter-free LayerNorm of each state before the sum
(``--upstream_feature_normalize`` in s3prl, off in SUPERB). The upstream itself is never here:
features come precomputed from the cache (:mod:`jooci.superb.cache`), so the Featurizer is the
only upstream-side thing a task trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYER_SELECTIONS = ("all", "content", "other")


@dataclass(frozen=True)
class UpstreamInfo:
    """What the evaluation needs to know about an upstream's hidden states.

    kind: "jooci", "hubert_baseline", "fbank", or "hf-hubert" / "hf-wavlm" / "hf-wav2vec2" (a
    transformers folder, :mod:`jooci.superb.hf`); layer_names: one per hidden state ("C0" = the
    Transformer input, "C1".. Content layers, "O1".. Other blocks, "fbank"; a transformers
    model's "L0" (its Transformer input) .. "LN"); n_content / n_other: how many of each
    (Content first; both 0 for a transformers model, whose states are not split); dim: the shared
    width; num_parameters: upstream parameters (training-only heads excluded); reading: how a
    transformers model is fed (:meth:`jooci.superb.hf.HFFolder.reading`), None for the others.
    """

    name: str
    kind: str
    layer_names: tuple[str, ...]
    n_content: int
    n_other: int
    dim: int
    num_parameters: int
    reading: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    def select(self, which: str) -> list[int]:
        """Indices of the hidden states for a selection: "all", "content" or "other".

        Raises:
            ValueError: an unknown selection, or one the upstream has no states for.
        """
        if which not in LAYER_SELECTIONS:
            raise ValueError(f"layer selection must be one of {', '.join(LAYER_SELECTIONS)}, got {which!r}")
        n = len(self.layer_names)
        if which != "all" and self.n_content == 0 and self.n_other == 0:
            raise ValueError(f"layer selection {which!r} picks a jooci model's Content or Other states; "
                             f"{self.name} ({self.kind}) has {n} hidden states not split into the two: "
                             "use layer selection 'all'")
        chosen = {"all": list(range(n)), "content": list(range(self.n_content)),
                  "other": list(range(self.n_content, self.n_content + self.n_other))}[which]
        if not chosen:
            raise ValueError(f"{self.name} ({self.kind}) has no {which!r} hidden states "
                             f"(it has {self.n_content} Content and {self.n_other} Other states)")
        return chosen


class Featurizer(nn.Module):
    """Softmax-weighted sum over L hidden states.

    Input is the states stacked on a leading layer axis, ``(L, ..., D)`` (e.g. ``(L, B, T, D)``
    frames or ``(L, B, D)`` pooled statistics); output ``(..., D)``.
    """

    def __init__(self, num_layers: int, normalize: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.normalize = normalize
        self.weights = nn.Parameter(torch.zeros(num_layers))  # softmax(0) = uniform

    def prepare(self, states: Tensor) -> Tensor:
        """The per-state normalisation, if on: a LayerNorm over D without parameters. It is
        parameter-free, so callers apply it once to cached frames rather than every step."""
        states = states.float()
        return F.layer_norm(states, states.shape[-1:]) if self.normalize else states

    def forward(self, states: Tensor, prepared: bool = True) -> Tensor:
        """``(L, ..., D)`` -> ``(..., D)``; ``prepared=False`` applies :meth:`prepare` first."""
        if states.shape[0] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} stacked states, got {states.shape[0]}")
        x = states.float() if prepared else self.prepare(states)
        w = torch.softmax(self.weights, dim=0)
        return torch.tensordot(w, x, dims=([0], [0]))

    def layer_weights(self) -> list[float]:
        """The current softmax weights, one per state."""
        return [float(v) for v in torch.softmax(self.weights.detach(), dim=0)]


def layer_names(n_content: int, n_other: int) -> list[str]:
    """"C0".."C{n_content-1}" then "O1".."O{n_other}" (C0 is the Transformer input)."""
    return [f"C{i}" for i in range(n_content)] + [f"O{i + 1}" for i in range(n_other)]


def stack_states(states: Sequence[Tensor]) -> Tensor:
    """A list of L (B, T, D) states -> (L, B, T, D), refusing mismatched shapes (as s3prl does)."""
    shapes = {tuple(s.shape) for s in states}
    if len(shapes) != 1:
        raise ValueError(f"hidden states must share one shape to be summed, got {sorted(shapes)}")
    return torch.stack(list(states), dim=0)
