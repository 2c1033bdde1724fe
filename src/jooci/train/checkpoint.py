"""Training checkpoints: weights in safetensors, the rest loadable with ``weights_only=True``.

A checkpoint is a folder ``RUN/checkpoints/step_XXXXXXXX/`` holding

- ``weights.safetensors``: every module's state dict, keys prefixed ``<module>.`` (student,
  teacher, heads...), no pickle;
- ``state.pt``: optimizer state, step, sampler position and RNG states — only tensors, numbers,
  strings, lists and dicts, so ``torch.load(..., weights_only=True)`` reads it and nothing is ever
  unpickled from a file a user was handed;
- ``meta.json``: ``format_version``, step, and the names of the modules.

It is written into ``step_XXXXXXXX.tmp`` and renamed, so a crash mid-write never leaves a
checkpoint that looks finished; only the last ``keep`` are kept.
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

FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d{8})$")


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
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:08d}"
    tmp = root / f"step_{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {}
    for name, m in modules.items():
        if "." in name or not name:
            raise ValueError(f"module name {name!r} must be non-empty and without dots")
        sd = m.state_dict() if isinstance(m, torch.nn.Module) else m
        for k, v in sd.items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous().clone()
    save_file(tensors, str(tmp / "weights.safetensors"))
    torch.save({"format_version": FORMAT_VERSION, "step": step, **state}, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "step": step,
                                               "modules": sorted(modules)}, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Finished checkpoints of ``run_dir``, oldest first (unfinished ``.tmp`` folders ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read a checkpoint folder: (module name -> state dict, training state)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise TrainStateError(f"{path}: not a checkpoint folder (no meta.json)") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise TrainStateError(f"{path}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}")
    flat = load_file(str(path / "weights.safetensors"), device=str(map_location))
    modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in meta["modules"]}
    for key, v in flat.items():
        name, _, rest = key.partition(".")
        modules[name][rest] = v
    state = torch.load(path / "state.pt", map_location=map_location, weights_only=True)
    return modules, state


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x
