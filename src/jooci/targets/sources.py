"""Where the frames to cluster come from: a feature source is a callable
``(waveforms (B, S), lengths (B,)) -> list of (T_i, D) float32 arrays`` plus what provenance needs.

Iteration 1 clusters 39-d MFCC; later iterations cluster one layer of a saved model. Both give one
vector per CNN frame (50 Hz), ``T_i = num_frames(lengths[i])``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jooci.features import mfcc

FeatureFn = Callable[[torch.Tensor, torch.Tensor], list[np.ndarray]]


class FeatureSourceError(Exception):
    """A feature source that cannot be built (e.g. a model checkpoint that is missing)."""


@dataclass(frozen=True)
class FeatureSource:
    """A named feature extractor. ``extract(waveforms, lengths)`` returns one ``(T_i, D)`` array
    per row, ``T_i`` the CNN frame count of ``lengths[i]`` at ``label_rate``."""

    name: str  # "mfcc" or "model"
    extract: FeatureFn
    label_rate: int = 50
    layer: int | None = None
    checkpoint: str | None = None

    def describe(self) -> dict:
        """The provenance record of this source (no callables)."""
        return {"name": self.name, "layer": self.layer, "checkpoint": self.checkpoint, "label_rate": self.label_rate}


def mfcc_source() -> FeatureSource:
    """39-d MFCC + delta + delta-delta at 50 Hz, CNN-aligned (see :mod:`jooci.features`)."""

    def extract(waveforms: torch.Tensor, lengths: torch.Tensor) -> list[np.ndarray]:
        feats, n = mfcc(waveforms, lengths, rate=50)
        return [feats[b, : int(n[b])].numpy().astype(np.float32, copy=False) for b in range(len(n))]

    return FeatureSource("mfcc", extract, label_rate=50)


def model_source(checkpoint: str | os.PathLike, layer: int, device: str | torch.device = "cpu") -> FeatureSource:
    """Layer ``layer`` of a saved jooci model (a ``save_pretrained`` folder): 0 is the projected CNN
    output, ``l`` the output of Content transformer layer ``l`` (HuBERT's numbering).

    Raises:
        FeatureSourceError: the model package is not available, or the checkpoint cannot be read.
    """
    if importlib.util.find_spec("jooci.hub") is None or importlib.util.find_spec("jooci.models") is None:
        raise FeatureSourceError("--model features are not available yet: this jooci has no model package "
                                 "(jooci.hub / jooci.models); use --features mfcc")
    from jooci import hub

    try:
        model = hub.load(checkpoint, map_location=device)
    except Exception as e:  # CheckpointError, missing files, bad config: one clear message
        raise FeatureSourceError(f"{checkpoint}: cannot load the model ({e})") from None
    model.eval()

    @torch.no_grad()
    def extract(waveforms: torch.Tensor, lengths: torch.Tensor) -> list[np.ndarray]:
        out = model.extract_features(waveforms.to(device), lengths.to(device))
        states = _hidden_states(out)
        if not 0 <= layer < len(states):
            raise FeatureSourceError(f"{checkpoint}: layer {layer} requested, the model has layers 0..{len(states) - 1}")
        h = states[layer].float().cpu()
        n = _frame_lengths(model, out, lengths)
        return [h[b, : int(n[b])].numpy() for b in range(h.shape[0])]

    return FeatureSource("model", extract, label_rate=50, layer=layer, checkpoint=str(Path(checkpoint).resolve()))


def _hidden_states(out) -> list[torch.Tensor]:
    # The Content encoder's stack: the models' output dataclass names it content_states when the
    # model has two encoders (JOOCI), hidden_states for the HuBERT baseline.
    for name in ("content_states", "hidden_states"):
        states = getattr(out, name, None)
        if states is not None:
            return list(states)
    raise FeatureSourceError(f"the model's extract_features returned {type(out).__name__} without hidden states")


def _frame_lengths(model, out, lengths: torch.Tensor) -> torch.Tensor:
    n = getattr(out, "lengths", None)
    if n is None and hasattr(model, "frame_lengths"):
        n = model.frame_lengths(lengths)
    if n is None:
        from jooci.features import frame_lengths

        n = frame_lengths(lengths, 50)
    return n.cpu()


__all__ = ["FeatureFn", "FeatureSource", "FeatureSourceError", "mfcc_source", "model_source"]
