"""The model folder: the one on-disk format of every jooci model (JOOCI, the HuBERT baseline, the
speaker teacher).

A folder holds two files:

- ``config.json``: ``{"model_type": str, "format_version": 1, "jooci_version": str, "config": {...}}``,
  the config read strictly into the model's config dataclass;
- ``model.safetensors``: the model's state dict, plus any auxiliary tensors its type declares
  (the teacher's DINO centre, ``center``). Nothing is unpickled.

Each file is written to a temporary name beside it and renamed (:mod:`jooci.fileio`), weights
first and config last, so a crash never leaves a half-written file behind.

This module knows no model class: each class (through :class:`Pretrained`) brings its own
``model_type`` and config class. The table of every type, and ``load`` for any folder, is
:mod:`jooci.hub`, which sits above the models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from jooci.fileio import atomic_path, atomic_write_json
from jooci.models._util import state_dict_problems

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(Exception):
    """A model folder that cannot be loaded; the message names the folder and the problem."""


def write_folder(directory: str | os.PathLike, model_type: str, config: dict[str, Any], state: dict[str, Tensor],
                 auxiliary: dict[str, Tensor] | None = None) -> Path:
    """Write a model folder (created if needed); returns it.

    Args:
        model_type: the ``model_type`` of config.json.
        config: the model config as a dict (``cfg.to_dict()``).
        state: the model's state dict.
        auxiliary: extra named tensors stored beside the state (names must not be state keys).
    """
    from safetensors.torch import save_file

    from jooci import __version__

    auxiliary = auxiliary or {}
    clash = sorted(set(auxiliary) & set(state))
    if clash:
        raise ValueError(f"auxiliary tensor names {clash} are state dict keys")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in {**state, **auxiliary}.items()}
    with atomic_path(d / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "model_type": model_type})
    atomic_write_json(d / CONFIG_NAME, {"model_type": model_type, "format_version": FORMAT_VERSION,
                                        "jooci_version": __version__, "config": config})
    return d


def read_config(directory: str | os.PathLike, known: Iterable[str] | None = None) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, checked for its keys and format version (and,
    if ``known`` is given, for a model_type among them).

    Raises:
        CheckpointError: no config.json, invalid JSON, a missing key, an unknown type or version.
    """
    d = Path(directory)
    path = d / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{d}: no {CONFIG_NAME} (not a jooci model folder)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    for key in ("model_type", "format_version", "config"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing {key!r}")
    if known is not None:
        known = list(known)
        if meta["model_type"] not in known:
            raise CheckpointError(f"{path}: unknown model_type {meta['model_type']!r}; known: {', '.join(known)}")
    if meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {meta['format_version']} is not supported "
                              f"(this jooci reads version {FORMAT_VERSION})")
    return meta


def read_weights(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Every tensor in the folder's ``model.safetensors``.

    Raises:
        CheckpointError: the file is missing or unreadable.
    """
    from safetensors.torch import load_file

    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{Path(directory)}: no {WEIGHTS_NAME}")
    try:
        return load_file(str(weights), device=str(map_location))
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise CheckpointError(f"{weights}: unreadable ({type(e).__name__}: {e})") from None


class Pretrained:
    """``save_pretrained`` / ``from_pretrained`` for a model class, in the model folder format.

    A class sets ``model_type`` (config.json's), ``config_class`` (a dataclass with
    ``to_dict``/``from_dict``) and, if its folder stores tensors beside its state,
    ``auxiliary_tensors`` (their names); it keeps its config as ``self.cfg``.
    """

    model_type: ClassVar[str]
    config_class: ClassVar[type]
    auxiliary_tensors: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def load_folder(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu",
                    meta: dict[str, Any] | None = None) -> tuple[Any, dict[str, Tensor]]:
        """(the model in eval mode, its auxiliary tensors found in the folder) from ``directory``.

        Raises:
            CheckpointError: not a folder of this format, or weights that do not fit the config.
            TypeError: the folder holds another model type.
            jooci.configio.ConfigError: a config key this version does not know.
        """
        d = Path(directory)
        meta = read_config(d) if meta is None else meta
        if meta["model_type"] != cls.model_type:
            raise TypeError(f"{d} holds a {meta['model_type']!r} model, not a {cls.__name__} "
                            f"({cls.model_type!r}); jooci.load reads a folder of any type")
        cfg = cls.config_class.from_dict(meta["config"])  # type: ignore[attr-defined]
        state = read_weights(d, map_location)
        auxiliary = {name: state.pop(name) for name in cls.auxiliary_tensors if name in state}
        model = cls(cfg)  # type: ignore[call-arg]
        problems = state_dict_problems(state, model.state_dict())  # type: ignore[attr-defined]
        if problems:
            raise CheckpointError(f"{d / WEIGHTS_NAME}: weights do not fit the config: {'; '.join(problems)}")
        model.load_state_dict(state)  # type: ignore[attr-defined]
        return model.to(map_location).eval(), auxiliary  # type: ignore[attr-defined]

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """Load a folder written by :meth:`save_pretrained`, in eval mode."""
        return cls.load_folder(directory, map_location)[0]

    def save_pretrained(self, directory: str | os.PathLike, auxiliary: dict[str, Tensor] | None = None) -> Path:
        """Write config.json and model.safetensors into ``directory`` (no pickle); returns it.

        ``auxiliary``: tensors stored beside the state, named among ``auxiliary_tensors``.
        """
        unknown = sorted(set(auxiliary or {}) - set(self.auxiliary_tensors))
        if unknown:
            raise ValueError(f"a {type(self).__name__} folder stores no {', '.join(unknown)} "
                             f"(it stores: {', '.join(self.auxiliary_tensors) or 'nothing beside the weights'})")
        return write_folder(directory, self.model_type, self.cfg.to_dict(),  # type: ignore[attr-defined]
                            self.state_dict(), auxiliary)  # type: ignore[attr-defined]


__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "WEIGHTS_NAME", "CheckpointError", "Pretrained", "read_config",
           "read_weights", "write_folder"]
