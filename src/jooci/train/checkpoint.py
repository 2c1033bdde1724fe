"""Training checkpoints: weights in safetensors, the rest loadable with ``weights_only=True``.

A checkpoint is a folder ``RUN/checkpoints/step_XXXXXXXX/`` holding

- ``weights.safetensors``: every module's state dict, keys prefixed ``<module>.`` (student,
  teacher, heads...), no pickle;
- ``state.pt``: optimizer state, step, sampler position and RNG states — only tensors, numbers,
  strings, lists and dicts, so ``torch.load(..., weights_only=True)`` reads it and nothing is ever
  unpickled from a file a user was handed;
- ``meta.json``: ``format_version``, step, and the names of the modules.

It is written into a temporary folder beside it and renamed (:func:`jooci.fileio.atomic_dir`),
so a crash mid-write never leaves a checkpoint that looks finished; only the last ``keep`` are
kept. A pruned checkpoint is renamed aside (``.step_XXXXXXXX.old``) before it is deleted, so a
crash mid-delete never leaves half a checkpoint under a finished name either; the next save
clears what a killed writer left (one writer per run folder).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from jooci.fileio import atomic_dir

FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d{8})$")
_LEFTOVER = re.compile(r"^\.step_\d{8}\.(tmp|old)$")  # atomic_dir's and pruning's temporary names


class TrainStateError(Exception):
    """A training checkpoint folder that cannot be loaded; the message names it. (A model folder
    that cannot be loaded raises :class:`jooci.hub.CheckpointError`.)"""


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, as weights_only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | os.PathLike, step: int, modules: dict[str, torch.nn.Module | dict],
                    state: dict[str, Any], keep: int = 3) -> Path:
    """Write checkpoint ``step`` of ``run_dir`` atomically and prune all but the last ``keep``.

    Args:
        modules: name -> module (or state dict); saved to ``weights.safetensors``.
        state: optimizer state dicts, sampler state, counters... (weights_only-loadable values).
    """
    final = Path(run_dir) / "checkpoints" / f"step_{step:08d}"
    tensors = {}
    for name, m in modules.items():
        if "." in name or not name:
            raise ValueError(f"module name {name!r} must be non-empty and without dots")
        sd = m.state_dict() if isinstance(m, torch.nn.Module) else m
        for k, v in sd.items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous().clone()
    with atomic_dir(final) as tmp:
        save_file(tensors, str(tmp / "weights.safetensors"))
        torch.save({"format_version": FORMAT_VERSION, "step": step, **state}, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "step": step,
                                                   "modules": sorted(modules)}, indent=1))
    for left in final.parent.glob(".step_*"):  # temporary folders of a killed writer
        if _LEFTOVER.match(left.name) and left.is_dir():
            shutil.rmtree(left, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        aside = old.with_name(f".{old.name}.old")
        os.replace(old, aside)
        shutil.rmtree(aside, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Finished checkpoints of ``run_dir``, oldest first (unfinished temporary folders ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read a checkpoint folder: (module name -> state dict, training state).

    Raises:
        TrainStateError: not a checkpoint folder, another format version, or a damaged file
            (truncated, not what its name says, a module missing from ``meta.json``); the message
            names the file and the problem.
    """
    path = Path(path)
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise TrainStateError(f"{path}: not a checkpoint folder (no meta.json)") from None
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
        raise TrainStateError(f"{meta_path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise TrainStateError(f"{path}: format_version {version} is not {FORMAT_VERSION}")
    names = meta.get("modules")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TrainStateError(f"{meta_path}: damaged (no list of module names under 'modules')")
    weights = path / "weights.safetensors"
    try:
        flat = load_file(str(weights), device=str(map_location))
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise TrainStateError(f"{weights}: unreadable ({type(e).__name__}: {e})") from None
    modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}
    for key, v in flat.items():
        name, _, rest = key.partition(".")
        if name not in modules:
            raise TrainStateError(f"{weights}: holds weights of module {name!r}, which meta.json does not name "
                                  f"(it names {', '.join(names) or 'none'})")
        modules[name][rest] = v
    state_path = path / "state.pt"
    try:
        state = torch.load(state_path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated zip, a pickle the safe loader refuses, a missing file
        raise TrainStateError(f"{state_path}: unreadable ({type(e).__name__}: {_torch_load_reason(e)})") from None
    if not isinstance(state, dict):
        raise TrainStateError(f"{state_path}: damaged (holds a {type(state).__name__}, not a dict)")
    return modules, state


def _torch_load_reason(e: Exception) -> str:
    """``torch.load``'s error on one line; of a refused pickle, only the reason (its advice to load
    with ``weights_only=False`` is not for a file that should hold tensors and numbers only)."""
    text = " ".join(str(e).split())
    reason = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    return reason.group(1) if reason else text


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x
