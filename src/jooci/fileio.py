"""Atomic file writes: write to a temporary name beside the target, then rename.

A process killed mid-write leaves either the old file or the new one, never half of one. Every
module that writes a result, a manifest, a model or a cache entry goes through these helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    For writers that want a file name (``np.save``, ``safetensors.save_file``, ``torch.save``).
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    tmp = _tmp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (newline-terminated) to ``path`` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
