"""Atomic writes: write to a temporary name beside the target, then rename.

A process killed mid-write leaves either the old file or the new one, never half of one. Every
module that writes a result, a manifest, a model or a cache entry goes through these helpers; a
folder written as a whole (a checkpoint, a model folder) goes through :func:`atomic_dir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new, empty temporary folder beside ``path``; on success it replaces ``path``.

    The old folder (if any) is renamed aside, the new one renamed in, then the old one deleted:
    at every moment ``path`` is either the old folder or the complete new one (a crash between the
    two renames leaves the old one as ``.NAME.old`` beside it). On an exception the temporary folder
    is removed and ``path`` is left as it was. The temporary names (``.NAME.tmp``, ``.NAME.old``)
    carry no process id, so a folder left by a killed writer is cleared by the next write of the
    same ``path``: one writer per folder at a time.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed writer
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)
        aside = target.exists()
        if aside:
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if aside:
                os.replace(old, target)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


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


__all__ = ["atomic_dir", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
