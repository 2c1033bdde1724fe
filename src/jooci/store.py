"""The on-disk feature store: per-utterance frame arrays in numbered shards, one skip policy.

Used by ``jooci extract`` (:mod:`jooci.extract`), the k-means feature dumps
(:mod:`jooci.targets.dump`) and the evaluation cache (:mod:`jooci.superb.cache`).

One shard, ``<prefix>``::

    <prefix>.npy            (sum T_i, D) frames of its utterances, concatenated in order   (one array)
    <prefix>.layerNN.npy    the same, one file per layer NN                              (per-layer)
    <prefix>.len            frames per utterance, one per line
    <prefix>.ids            utterance ids, one per line
    <prefix>.json           the shard's index, written last

With one array this is fairseq's HuBERT feature-dump layout (``{split}_{rank}_{nshard}.npy`` and
``.len``; ``learn_kmeans.py`` reads it as is). The index holds ``format``, ``version``, ``dtype``,
``dim``, ``layers`` (null for one array), ``utterances``, ``frames``, ``ids_sha256`` and the
writer's ``meta``. A shard without its index, or whose files disagree with it, is unfinished:
:func:`open_shard` refuses it and :func:`shard_info` says None. The arrays are written under
temporary names and renamed, the index last, and a writer starts by deleting the old index, so a
writer killed at any point never leaves a shard that reads as finished. One writer per shard.

A store folder (:class:`StoreWriter`, :func:`open_store`) is a run of shards ``shard_00000``,
``shard_00001``, ... and an ``index.json`` (written last) listing them, the layers, dtype, counts
and the files skipped.

:class:`SkipPolicy` is the one rule for unreadable audio: each file is logged with its reason and
recorded; past ``max_fraction`` of the utterances :class:`TooManySkippedError` names how many and
the first few files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jooci.fileio import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

FORMAT = "jooci-features"
VERSION = 1
DTYPES = ("float16", "float32")
INDEX = "index.json"

Features = np.ndarray | Mapping[int, np.ndarray]


class StoreError(ValueError):
    """A shard or store that cannot be read as it is (unfinished, damaged, another version)."""


class IncompleteShardError(StoreError, FileNotFoundError):
    """A shard whose index is missing: never finished (or being rewritten)."""


class ExtractError(ValueError):
    """Features cannot be extracted as asked: a bad layer selection, too many unreadable files."""


class TooManySkippedError(ExtractError):
    """More unreadable files than the skip policy allows (raised by :class:`SkipPolicy`)."""

    def __init__(self, message: str, skipped: Sequence[Mapping[str, str]], total: int):
        super().__init__(message)
        self.skipped, self.total = list(skipped), total


def hash_lines(lines: Sequence[str]) -> str:
    """sha256 over ``line + "\\n"`` for each line."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Skip policy


@dataclass
class SkipPolicy:
    """Unreadable files: skipped, logged with their reason and recorded, up to a limit.

    Args:
        max_fraction: the run fails once more than this fraction of ``total`` is skipped (0: any
            unreadable file fails it).
        total: the utterances the run covers (None: checked only by :meth:`check`).
        hint: appended to the error (why the limit is what it is).
    """

    max_fraction: float = 0.05
    total: int | None = None
    hint: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.max_fraction <= 1:
            raise ValueError(f"max_fraction must be in [0, 1], got {self.max_fraction}")

    def skip(self, utt_id: str, path: str | os.PathLike, reason: str) -> None:
        """Record one unreadable file; raises :class:`TooManySkippedError` once past the limit."""
        self.skipped.append({"id": str(utt_id), "path": str(path), "reason": str(reason)})
        log.warning("skipping %s (%s): %s [%d skipped]", utt_id, path, reason, len(self.skipped))
        if self.total is not None:
            self.check(self.total)

    def load_audio(self, utt_id: str, path: str | os.PathLike) -> np.ndarray | None:
        """:func:`jooci.audio.load_audio`, or None (recorded) for an unreadable file."""
        from jooci.audio import AudioError, load_audio

        try:
            return load_audio(path)
        except AudioError as e:
            self.skip(utt_id, path, e.reason)
            return None

    def over_limit(self, total: int) -> bool:
        return total > 0 and len(self.skipped) > self.max_fraction * total

    def check(self, total: int | None = None) -> None:
        """Raise :class:`TooManySkippedError` if more than ``max_fraction`` of ``total`` was skipped."""
        total = self.total if total is None else total
        if total is None or not self.over_limit(total):
            return
        first = "; ".join(f"{s['path']}: {s['reason']}" for s in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        hint = f" ({self.hint})" if self.hint else ""
        raise TooManySkippedError(f"{len(self.skipped)} of {total} files unreadable (more than "
                                  f"{self.max_fraction:.0%}{hint}); first: {first}{more}", self.skipped, total)


# ---------------------------------------------------------------------------------------------
# One shard: writing


def _array_path(prefix: Path, layer: int | None) -> Path:
    return Path(f"{prefix}.npy") if layer is None else Path(f"{prefix}.layer{layer:02d}.npy")


def _index_path(prefix: Path) -> Path:
    return Path(f"{prefix}.json")


class ShardWriter:
    """Append utterances to shard ``prefix``; :meth:`close` finalises it, :meth:`abort` drops it.

    As a context manager it closes on success and aborts on an exception.

    Args:
        prefix: the shard's path without suffix (its folder is created).
        layers: None for one array per utterance (``<prefix>.npy``), else the layer numbers
            (``add`` then takes ``{layer: array}``, one ``<prefix>.layerNN.npy`` each).
        dtype: "float16" or "float32"; arrays are cast with ``astype`` as they are added.
        frames: the shard's total frame count if known: the rows are then written straight into
            the ``.npy`` files, after a header for that many frames; otherwise they are streamed
            to a side file and copied behind the header at the end. Either way rows go through
            plain file writes, never a writable memory map: no shard is held in memory, and
            none of it counts in the writer's resident memory (dirty pages of a mapped file do,
            until unmapped; under a batch scheduler's memory limit they count against the job).
        meta: caller's JSON-able description, stored in the index.
    """

    def __init__(self, prefix: str | os.PathLike, *, layers: Sequence[int] | None = None, dtype: str = "float32",
                 frames: int | None = None, meta: Mapping[str, Any] | None = None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.prefix = Path(prefix)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.keys: list[int | None] = [None] if layers is None else [int(k) for k in layers]
        if layers is not None and (not self.keys or len(set(self.keys)) != len(self.keys)):
            raise ValueError(f"layers must be distinct and not empty, got {list(layers)}")
        self.layers = None if layers is None else list(self.keys)
        self.dtype = np.dtype(dtype)
        self.expected_frames = frames
        self.meta = dict(meta or {})
        self.ids: list[str] = []
        self.lengths: list[int] = []
        self.dim: int | None = None
        self.closed = False
        self._frames = 0
        # Invalidate first: from here on the old shard (if any) no longer reads as finished.
        _index_path(self.prefix).unlink(missing_ok=True)
        for stale in self.prefix.parent.glob(f".{self.prefix.name}.*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        self._stack = contextlib.ExitStack()
        self._tmp = {k: self._stack.enter_context(atomic_path(_array_path(self.prefix, k))) for k in self.keys}
        self._files: dict[int | None, Any] = {}  # the .npy files, when ``frames`` is known
        self._side: dict[int | None, Any] = {}

    @property
    def num_utterances(self) -> int:
        return len(self.ids)

    @property
    def num_frames(self) -> int:
        return self._frames

    def add(self, utt_id: str, features: Features) -> None:
        """Append one utterance: a ``(T, D)`` array, or ``{layer: (T, D)}`` for a per-layer shard."""
        self.add_parts(utt_id, [features])

    def add_parts(self, utt_id: str, parts: Iterable[Features]) -> None:
        """Append one utterance given as consecutive row blocks (each as :meth:`add` takes it),
        written as they come, so an utterance longer than memory allows is never held whole.
        An exception while ``parts`` is consumed aborts the shard (its rows are half written)."""
        if self.closed:
            raise StoreError(f"{self.prefix}: shard already closed")
        if "\n" in str(utt_id) or "\r" in str(utt_id):
            raise ValueError(f"{self.prefix}: utterance id {utt_id!r} holds a line break")
        n = 0
        try:
            for features in parts:
                n += self._write_rows(utt_id, features, self.num_frames + n)
        except BaseException:
            self.abort()
            raise
        self.ids.append(str(utt_id))
        self.lengths.append(n)
        self._frames += n

    def _write_rows(self, utt_id: str, features: Features, row: int) -> int:
        if self.layers is None:
            if isinstance(features, Mapping):
                raise ValueError(f"{self.prefix}: a one-array shard takes an array, got a mapping")
            per = {None: features}
        else:
            if not isinstance(features, Mapping) or set(features) != set(self.keys):
                got = sorted(features) if isinstance(features, Mapping) else type(features).__name__
                raise ValueError(f"{self.prefix}: expected arrays for layers {self.layers}, got {got}")
            per = features
        arrays = {k: np.asarray(per[k]).astype(self.dtype, copy=False) for k in self.keys}
        n = int(arrays[self.keys[0]].shape[0])
        for k, a in arrays.items():
            if a.ndim != 2 or a.shape[0] != n or (self.dim is not None and a.shape[1] != self.dim):
                raise ValueError(f"{self.prefix}: {utt_id}: layer {k} has shape {a.shape}, expected "
                                 f"({n}, {self.dim if self.dim is not None else 'D'})")
        if self.dim is None:
            self.dim = int(arrays[self.keys[0]].shape[1])
        if self.expected_frames is not None:
            if row + n > self.expected_frames:
                raise StoreError(f"{self.prefix}: {utt_id} brings the shard past its {self.expected_frames} frames")
            for k, a in arrays.items():
                if k not in self._files:
                    self._files[k] = open(self._tmp[k], "wb")  # noqa: SIM115 (closed in close/abort)
                    self._write_header(self._files[k], self.expected_frames)
                self._files[k].write(np.ascontiguousarray(a).tobytes())
        else:
            for k, a in arrays.items():
                if k not in self._side:
                    self._side[k] = open(self._side_path(k), "wb")  # noqa: SIM115 (closed in close/abort)
                self._side[k].write(np.ascontiguousarray(a).tobytes())
        return n

    def _write_header(self, f: Any, frames: int) -> None:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                 "fortran_order": False, "shape": (int(frames), int(self.dim or 0))})

    def _side_path(self, k: int | None) -> Path:
        return self._tmp[k].with_name(self._tmp[k].name + ".rows.tmp")

    def close(self) -> dict:
        """Finalise: arrays renamed into place, ``.len``, ``.ids``, then the index. Returns the index."""
        if self.closed:
            raise StoreError(f"{self.prefix}: shard already closed")
        try:
            frames, dim = self.num_frames, self.dim if self.dim is not None else 0
            if self.expected_frames is not None and frames != self.expected_frames:
                raise StoreError(f"{self.prefix}: {frames} frames written, {self.expected_frames} announced")
            if frames == 0:  # nothing to map: every array is written empty below
                self._drop_buffers()
            for k in self.keys:
                if k in self._files:
                    self._files.pop(k).close()
                elif k in self._side:
                    self._side.pop(k).close()
                    side = self._side_path(k)
                    with open(self._tmp[k], "wb") as out, open(side, "rb") as src:
                        self._write_header(out, frames)
                        shutil.copyfileobj(src, out, 64 << 20)
                    side.unlink()
                else:  # no utterance: an empty array
                    with open(self._tmp[k], "wb") as fh:
                        np.save(fh, np.zeros((0, dim), dtype=self.dtype), allow_pickle=False)
            self._stack.close()  # renames every array onto its final name
            atomic_write_text(f"{self.prefix}.len", "".join(f"{n}\n" for n in self.lengths))
            atomic_write_text(f"{self.prefix}.ids", "".join(f"{i}\n" for i in self.ids))
            index = {"format": FORMAT, "version": VERSION, "dtype": self.dtype.name, "dim": dim,
                     "layers": self.layers, "utterances": len(self.ids), "frames": frames,
                     "ids_sha256": hash_lines(self.ids), "meta": self.meta}
            atomic_write_json(_index_path(self.prefix), index, indent=1)
        except BaseException:
            self.abort()
            raise
        self.closed = True
        return index

    def _drop_buffers(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        for fh in self._side.values():
            fh.close()
        self._side.clear()
        for k in self.keys:
            self._side_path(k).unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop what was written (temporary files removed; the shard stays unfinished)."""
        self.closed = True
        self._drop_buffers()
        self._stack.__exit__(StoreError, StoreError("aborted"), None)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self.closed:
                self.close()
        elif not self.closed:
            self.abort()


# ---------------------------------------------------------------------------------------------
# One shard: reading


def shard_info(prefix: str | os.PathLike) -> dict | None:
    """The index of a finished shard of this format version, or None (unfinished, absent, other)."""
    path = _index_path(Path(prefix))
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("version") != VERSION:
        return None
    return info


@dataclass
class Shard:
    """A finished shard, opened read-only; the arrays are memory-mapped."""

    prefix: Path
    info: dict
    ids: list[str]
    lengths: np.ndarray  # (n,) int64
    offsets: np.ndarray  # (n + 1,) int64 row offsets
    arrays: dict[int | None, np.ndarray | ArrayFile]  # layer (None: the one array) -> (frames, D)
    _rows: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def layers(self) -> list[int] | None:
        return self.info["layers"]

    @property
    def features(self) -> np.ndarray:
        """The ``(frames, D)`` array of a one-array shard."""
        if None not in self.arrays:
            raise StoreError(f"{self.prefix}: a per-layer shard has no single feature array")
        return self.arrays[None]

    def row(self, utt_id: str) -> int:
        """Position of ``utt_id`` in the shard (KeyError if absent)."""
        if self._rows is None:
            self._rows = {u: i for i, u in enumerate(self.ids)}
        return self._rows[utt_id]

    def utterance(self, k: int, layer: int | None = None) -> np.ndarray:
        """``(T_k, D)`` frames of the ``k``-th utterance (a view; ``layer`` for a per-layer shard)."""
        if layer is None and self.layers is not None:
            raise StoreError(f"{self.prefix}: a per-layer shard needs layer=")
        a = self.arrays[layer]
        if isinstance(a, ArrayFile):
            raise StoreError(f"{self.prefix}: opened unmapped (mapped=False): use read()")
        return a[self.offsets[k] : self.offsets[k + 1]]

    def frames(self, utt_id: str, layer: int | None = None) -> np.ndarray:
        """``(T, D)`` frames of utterance ``utt_id``."""
        return self.utterance(self.row(utt_id), layer)

    def read(self, k: int, layer: int | None = None, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` of the ``k``-th utterance as a new array, read with file I/O.

        :meth:`utterance` gives a view of the memory map, whose pages, once touched, count in the
        process's resident memory for as long as the shard is open; reading through the file
        leaves them in the OS page cache instead, so a reader that walks a cache larger than RAM
        (an evaluation streaming its batches) holds only what it keeps.
        """
        if layer is None and self.layers is not None:
            raise StoreError(f"{self.prefix}: a per-layer shard needs layer=")
        a = self.arrays[layer]
        n = int(self.lengths[k])
        stop = n if stop is None else min(int(stop), n)
        start = min(max(0, int(start)), stop)
        out = np.empty((stop - start, a.shape[1]), dtype=a.dtype)
        if out.size == 0:
            return out
        if not isinstance(a, (np.memmap, ArrayFile)):  # loaded whole: nothing to keep out of memory
            out[:] = a[self.offsets[k] + start : self.offsets[k] + stop]
            return out
        buf = memoryview(out).cast("B")
        with open(a.filename, "rb", buffering=0) as f:
            f.seek(a.offset + int(self.offsets[k] + start) * a.shape[1] * a.itemsize)
            got = 0
            while got < len(buf):
                n_read = f.readinto(buf[got:])
                if not n_read:
                    raise StoreError(f"{a.filename}: cut short: utterance {k} of {self.prefix.name} "
                                     "runs past the end of the file")
                got += n_read
        return out

    def __iter__(self) -> Iterator[tuple[str, np.ndarray | dict[int, np.ndarray]]]:
        """``(id, frames)`` in order; frames is ``{layer: array}`` for a per-layer shard."""
        for k, u in enumerate(self.ids):
            if self.layers is None:
                yield u, self.utterance(k)
            else:
                yield u, {layer: self.utterance(k, layer) for layer in self.layers}


@dataclass(frozen=True)
class ArrayFile:
    """Where a ``.npy`` array lies in its file, read from the header without mapping it: what
    :meth:`Shard.read` needs, and no open file or memory map (a reader of thousands of shards
    would otherwise hold a file descriptor per array)."""

    filename: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


def _array_file(path: Path) -> ArrayFile:
    """The header of a ``.npy`` file. Raises ValueError for a file that is not one (as
    ``np.load`` would), cut short, Fortran-ordered or of object dtype."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy format version {version} is not read here")
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    if fortran or dtype.hasobject:
        raise ValueError("a Fortran-ordered or object array")
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < need:
        raise ValueError(f"cut short: {size} bytes, the header needs {need}")
    return ArrayFile(str(path), offset, tuple(int(x) for x in shape), dtype)


def open_shard(prefix: str | os.PathLike, layers: Sequence[int] | None = None, *, mapped: bool = True) -> Shard:
    """Open a finished shard (``layers``: which of a per-layer shard's arrays to map; None: all).

    ``mapped=False`` keeps only where each array lies (:class:`ArrayFile`): :meth:`Shard.read`
    works, the views of :meth:`Shard.utterance` do not, and no file stays open.

    Raises:
        IncompleteShardError: no index (never finished), naming the shard.
        StoreError: another format version, or files that disagree with the index.
    """
    prefix = Path(prefix)
    info = shard_info(prefix)
    if info is None:
        if _index_path(prefix).exists():
            raise StoreError(f"{prefix}: not a feature shard of format {FORMAT} version {VERSION}")
        raise IncompleteShardError(f"{prefix}: feature shard is missing or unfinished (no {prefix.name}.json)")
    lengths = np.array([int(x) for x in Path(f"{prefix}.len").read_text().split()], dtype=np.int64)
    ids = Path(f"{prefix}.ids").read_text(encoding="utf-8").splitlines()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keys: list[int | None] = [None] if info["layers"] is None else list(info["layers"] if layers is None else layers)
    missing = [k for k in keys if info["layers"] is not None and k not in info["layers"]]
    if missing:
        raise StoreError(f"{prefix}: no layer(s) {missing}; the shard holds {info['layers']}")
    problems = []
    if len(ids) != info["utterances"] or len(lengths) != info["utterances"]:
        problems.append(f"{len(ids)} ids and {len(lengths)} lengths for {info['utterances']} utterances")
    if int(offsets[-1]) != info["frames"]:
        problems.append(f"lengths add up to {int(offsets[-1])} frames, the index says {info['frames']}")
    if hash_lines(ids) != info["ids_sha256"]:
        problems.append("ids differ from those indexed")
    arrays: dict[int | None, np.ndarray] = {}
    for k in keys:
        path = _array_path(prefix, k)
        try:
            a = (np.load(path, mmap_mode="r" if info["frames"] else None, allow_pickle=False)
                 if mapped or not info["frames"] else _array_file(path))
        except ValueError as e:  # not a .npy, cut short, or an object array (a pickle, never loaded)
            raise StoreError(f"{path}: unreadable feature array ({e})") from None
        if a.shape != (info["frames"], info["dim"]) or a.dtype.name != info["dtype"]:
            problems.append(f"{path.name} holds {a.dtype.name} {a.shape}, the index says "
                            f"{info['dtype']} ({info['frames']}, {info['dim']})")
        arrays[k] = a
    if problems:
        raise StoreError(f"{prefix}: shard files disagree with its index: " + "; ".join(problems))
    return Shard(prefix, info, ids, lengths, offsets, arrays)


# ---------------------------------------------------------------------------------------------
# A store folder: numbered shards and an index


_SHARD_FILE = re.compile(r"shard_\d{5}\.(json|len|ids|npy|layer\d{2}\.npy)")


def shard_name(k: int) -> str:
    return f"shard_{k:05d}"


class StoreWriter:
    """Write utterances into ``root/shard_00000...``, ``shard_size`` per shard; :meth:`close` writes
    ``index.json`` (last). Opening a writer deletes the folder's index and the shard files of an
    earlier run, so a killed run never reads as finished.

    Args:
        root: the folder (created).
        layers, dtype: as :class:`ShardWriter`; ``layers`` may be set until the first ``add``
            (a caller that learns them from its first batch).
        shard_size: utterances per shard.
        meta: stored in ``index.json``.
    """

    def __init__(self, root: str | os.PathLike, *, layers: Sequence[int] | None = None, dtype: str = "float32",
                 shard_size: int = 1000, meta: Mapping[str, Any] | None = None):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / INDEX).unlink(missing_ok=True)
        for old in self.root.iterdir():
            if _SHARD_FILE.fullmatch(old.name):
                old.unlink()
        self.layers = None if layers is None else [int(k) for k in layers]
        self.dtype, self.shard_size, self.meta = dtype, shard_size, dict(meta or {})
        self.shards: list[str] = []
        self.num_utterances = 0
        self.num_frames = 0
        self.dim: int | None = None
        self._open: ShardWriter | None = None

    def add(self, utt_id: str, features: Features) -> None:
        self.add_parts(utt_id, [features])

    def add_parts(self, utt_id: str, parts: Iterable[Features]) -> None:
        """One utterance as consecutive row blocks (:meth:`ShardWriter.add_parts`)."""
        if self._open is None:
            self._open = ShardWriter(self.root / shard_name(len(self.shards)), layers=self.layers, dtype=self.dtype)
        self._open.add_parts(utt_id, parts)
        self.dim = self._open.dim
        self.num_utterances += 1
        self.num_frames += self._open.lengths[-1]
        if self._open.num_utterances >= self.shard_size:
            self.flush()

    def flush(self) -> str | None:
        """Finish the open shard (if it holds anything); returns its name."""
        if self._open is None:
            return None
        self._open.close()
        name = self._open.prefix.name
        self.shards.append(name)
        self._open = None
        return name

    def close(self, **extra: Any) -> dict:
        """Finish the last shard and write ``index.json`` (with ``extra`` keys); returns it."""
        self.flush()
        index = {"format": FORMAT, "version": VERSION, "layers": self.layers, "dtype": self.dtype,
                 "dim": self.dim if self.dim is not None else 0, "num_utterances": self.num_utterances,
                 "num_frames": self.num_frames, "shards": self.shards, **extra, "meta": self.meta}
        atomic_write_json(self.root / INDEX, index)
        return index

    def abort(self) -> None:
        if self._open is not None:
            self._open.abort()
            self._open = None


class FeatureStore:
    """A finished store folder, read-only: utterances by id or in order, memory-mapped.

    Raises (on opening):
        IncompleteShardError: no ``index.json`` (the run never finished).
        StoreError: another format version, or a shard that does not open.
    """

    def __init__(self, root: str | os.PathLike, layers: Sequence[int] | None = None, *, mapped: bool = True):
        self.root = Path(root)
        path = self.root / INDEX
        try:
            self.index = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IncompleteShardError(f"{self.root}: feature store is missing or unfinished (no {INDEX})") from None
        if self.index.get("format") != FORMAT or self.index.get("version") != VERSION:
            raise StoreError(f"{path}: not a feature store of format {FORMAT} version {VERSION}")
        self.shards = [open_shard(self.root / name, layers, mapped=mapped) for name in self.index["shards"]]
        self._where: dict[str, tuple[int, int]] | None = None

    @property
    def layers(self) -> list[int] | None:
        return self.index["layers"]

    @property
    def ids(self) -> list[str]:
        return [u for s in self.shards for u in s.ids]

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._locate()

    def _locate(self) -> dict[str, tuple[int, int]]:
        if self._where is None:
            self._where = {u: (i, k) for i, s in enumerate(self.shards) for k, u in enumerate(s.ids)}
        return self._where

    def locate(self, utt_id: str) -> tuple[Shard, int]:
        """The shard holding ``utt_id`` and its row there (KeyError if absent)."""
        i, k = self._locate()[utt_id]
        return self.shards[i], k

    def frames(self, utt_id: str, layer: int | None = None) -> np.ndarray:
        shard, k = self.locate(utt_id)
        return shard.utterance(k, layer)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray | dict[int, np.ndarray]]]:
        for s in self.shards:
            yield from s


def open_store(root: str | os.PathLike, layers: Sequence[int] | None = None, *, mapped: bool = True) -> FeatureStore:
    """Open a finished store folder (``layers``: which arrays to map; None: all; ``mapped``: as
    :func:`open_shard`)."""
    return FeatureStore(root, layers, mapped=mapped)


__all__ = ["DTYPES", "FORMAT", "VERSION", "ArrayFile", "ExtractError", "FeatureStore", "IncompleteShardError", "Shard",
           "ShardWriter", "SkipPolicy", "StoreError", "StoreWriter", "TooManySkippedError", "hash_lines",
           "open_shard", "open_store", "shard_info", "shard_name"]
