"""Model folders: ``config.json`` (model type, format version, config) + ``model.safetensors``.

Nothing is unpickled: weights are safetensors, the config is JSON read strictly into the model's
config dataclass. Files are written to a temporary name and renamed, so a crash never leaves a
half-written model behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class Pretrained:
    """``save_pretrained`` / ``from_pretrained`` / ``frame_lengths`` for the jooci compositions
    (JOOCI and HuBERTBaseline), which define ``model_type``, ``cfg`` and ``frontend``."""

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """Load a folder written by :meth:`save_pretrained` (config.json + model.safetensors)."""
        model = load(directory, map_location)
        if not isinstance(model, cls):
            raise TypeError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json and model.safetensors into ``directory`` (no pickle)."""
        return save_pretrained(self, directory)  # type: ignore[arg-type]

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) sample counts -> (B,) 50 Hz frame counts (for building frame masks before forward)."""
        return self.frontend.output_lengths(lengths)  # type: ignore[attr-defined]


class CheckpointError(Exception):
    """A model folder that cannot be loaded; the message names the folder and the problem."""


def _model_types() -> dict[str, Any]:
    # One literal table from model_type to class; imported here to avoid an import cycle.
    from jooci.models.baseline import BaselineConfig, HuBERTBaseline
    from jooci.models.jooci import JOOCI, JOOCIConfig

    return {"jooci": (JOOCI, JOOCIConfig), "hubert_baseline": (HuBERTBaseline, BaselineConfig)}


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model`` (a JOOCI or HuBERTBaseline) into ``directory``; returns the folder."""
    from jooci import __version__

    model_type = getattr(model, "model_type", None)
    if model_type not in _model_types():
        raise TypeError(f"cannot save a {type(model).__name__}: not a jooci model")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config = {"model_type": model_type, "format_version": FORMAT_VERSION, "jooci_version": __version__,
              "config": model.cfg.to_dict()}  # type: ignore[union-attr]
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp_w = d / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp_w), metadata={"format": "pt", "model_type": model_type})
    tmp_c = d / (CONFIG_NAME + ".tmp")
    tmp_c.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_w, d / WEIGHTS_NAME)
    os.replace(tmp_c, d / CONFIG_NAME)
    return d


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, checked for type and format version."""
    d = Path(directory)
    path = d / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{d}: no {CONFIG_NAME} (not a jooci model folder)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON ({e})") from None
    for key in ("model_type", "format_version", "config"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing {key!r}")
    if meta["model_type"] not in _model_types():
        raise CheckpointError(f"{path}: unknown model_type {meta['model_type']!r}; "
                              f"known: {', '.join(_model_types())}")
    if meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {meta['format_version']} is not supported "
                              f"(this jooci reads version {FORMAT_VERSION})")
    return meta


def load(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load whichever jooci model ``directory`` holds (JOOCI or HuBERTBaseline), in eval mode."""
    d = Path(directory)
    meta = read_config(d)
    cls, cfg_cls = _model_types()[meta["model_type"]]
    cfg = cfg_cls.from_dict(meta["config"])
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{d}: no {WEIGHTS_NAME}")
    state = load_file(str(weights), device=str(map_location))
    model = cls(cfg)
    expected = model.state_dict()
    from jooci.models._util import state_dict_problems  # here: jooci.models imports this module

    parts = state_dict_problems(state, expected)
    if parts:
        raise CheckpointError(f"{weights}: weights do not fit the config: {'; '.join(parts)}")
    model.load_state_dict(state)
    return model.to(map_location).eval()
