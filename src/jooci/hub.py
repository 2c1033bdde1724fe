"""Model folders of any type: the table ``model_type -> class`` and :func:`load` for any folder.

The format itself (``config.json`` with ``model_type``, ``format_version``, ``jooci_version``,
``config``; ``model.safetensors``; atomic writes) is :mod:`jooci.models.folder`, which each
model class uses for its own ``from_pretrained`` / ``save_pretrained``. This module sits above
the models and imports them; they import nothing from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jooci.models.baseline import HuBERTBaseline
from jooci.models.folder import (
    CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, CheckpointError, Pretrained, read_config as _read_folder_config)
from jooci.models.jooci import JOOCI
from jooci.models.speaker import SpeakerModel

MODEL_TYPES: dict[str, type[Pretrained]] = {
    JOOCI.model_type: JOOCI,
    HuBERTBaseline.model_type: HuBERTBaseline,
    SpeakerModel.model_type: SpeakerModel,
}
"""Every model type a folder can hold, by the ``model_type`` of its config.json."""


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model`` (a JOOCI, HuBERTBaseline or SpeakerModel) into ``directory``; returns the folder."""
    if not isinstance(model, Pretrained) or model.model_type not in MODEL_TYPES:
        raise TypeError(f"cannot save a {type(model).__name__}: not a jooci model")
    return model.save_pretrained(directory)


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, checked for type and format version.

    Raises:
        CheckpointError: no config.json, invalid JSON, a missing key, an unknown type or version.
    """
    return _read_folder_config(directory, known=MODEL_TYPES)


def load(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load whichever jooci model ``directory`` holds (JOOCI, HuBERTBaseline or a speaker
    teacher), in eval mode.

    Raises:
        CheckpointError: not a model folder, an unknown type or version, or weights that do not
            fit the config (the differing keys named).
    """
    meta = read_config(directory)
    return MODEL_TYPES[meta["model_type"]].load_folder(directory, map_location, meta)[0]


__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "MODEL_TYPES", "WEIGHTS_NAME", "CheckpointError", "Pretrained", "load",
           "read_config", "save_pretrained"]
