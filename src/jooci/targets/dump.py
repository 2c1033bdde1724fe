"""Feature dumping in shards, fairseq-style: shard ``r`` of ``n`` holds a contiguous slice of the
manifest, written as ``feat_{r}_{n}.npy`` (all frames, ``(sum T_i, D)`` float32), ``.len`` (frames
per utterance, one per line) and ``.ids`` (utterance ids), so machines can share the work and the
concatenation of the shards is the manifest in order.

Unlike fairseq, the ``.npy`` is written through a memory map sized from the manifest up front (no
shard is held in memory), every utterance's frame count is checked against the CNN's count as it
is written, and a finished shard (``.json`` marker written last) is reused, not recomputed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jooci.audio import load_audio
from jooci.data.manifest import Utterance
from jooci.targets.labels import LabelError, expected_frames
from jooci.targets.sources import FeatureSource

log = logging.getLogger(__name__)


def shard_range(total: int, nshard: int, rank: int) -> tuple[int, int]:
    """``[start, end)`` of shard ``rank`` of ``nshard`` over ``total`` items (contiguous, sizes
    differing by at most one; fairseq's ``get_shard_range``)."""
    if nshard < 1 or not 0 <= rank < nshard:
        raise ValueError(f"need 0 <= rank < nshard, got rank {rank}, nshard {nshard}")
    return round(total * rank / nshard), round(total * (rank + 1) / nshard)


def shard_prefix(feat_dir: str | os.PathLike, rank: int, nshard: int) -> Path:
    return Path(feat_dir) / f"feat_{rank}_{nshard}"


@dataclass
class Shard:
    """A finished feature shard, opened read-only (the features are memory-mapped)."""

    features: np.ndarray  # (sum T_i, D) float32 memmap
    lengths: np.ndarray  # (n_utts,) int64
    ids: list[str]
    offsets: np.ndarray  # (n_utts + 1,) int64 row offsets into `features`

    def __len__(self) -> int:
        return len(self.ids)

    def utterance(self, k: int) -> np.ndarray:
        return self.features[self.offsets[k] : self.offsets[k + 1]]


def shard_done(feat_dir: str | os.PathLike, rank: int, nshard: int) -> dict | None:
    """The marker of a finished shard (its source description and ids hash), or None."""
    marker = shard_prefix(feat_dir, rank, nshard).with_suffix(".json")
    return json.loads(marker.read_text()) if marker.exists() else None


def open_shard(feat_dir: str | os.PathLike, rank: int, nshard: int) -> Shard:
    """Open a finished shard; raises FileNotFoundError naming it if it is not finished."""
    prefix = shard_prefix(feat_dir, rank, nshard)
    if shard_done(feat_dir, rank, nshard) is None:
        raise FileNotFoundError(f"{prefix}.npy: feature shard {rank} of {nshard} is missing or unfinished")
    lengths = np.array([int(x) for x in Path(f"{prefix}.len").read_text().split()], dtype=np.int64)
    ids = Path(f"{prefix}.ids").read_text(encoding="utf-8").splitlines()
    feats = np.load(f"{prefix}.npy", mmap_mode="r")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    if len(ids) != len(lengths) or offsets[-1] != feats.shape[0]:
        raise LabelError(prefix, [f"shard files disagree: {len(ids)} ids, {len(lengths)} lengths, "
                                  f"{offsets[-1]} frames listed, {feats.shape[0]} frames stored"])
    return Shard(feats, lengths, ids, offsets)


def _batches(utts: Sequence[Utterance], max_samples: int) -> Iterator[list[int]]:
    """Consecutive index groups whose padded size (count x longest) stays under ``max_samples``."""
    batch: list[int] = []
    longest = 0
    for k, u in enumerate(utts):
        n = max(longest, u.num_samples)
        if batch and n * (len(batch) + 1) > max_samples:
            yield batch
            batch, n = [], u.num_samples
        batch.append(k)
        longest = n
    if batch:
        yield batch


def dump_shard(
    utts: Sequence[Utterance],
    source: FeatureSource,
    feat_dir: str | os.PathLike,
    nshard: int = 1,
    rank: int = 0,
    *,
    batch_seconds: float = 60.0,
    progress: bool = True,
) -> Path:
    """Extract ``source`` features for shard ``rank`` of ``nshard`` of ``utts``; returns the prefix.

    A shard already finished with the same source and the same utterances is kept as is.

    Raises:
        LabelError: an utterance whose features do not have the CNN's frame count (named).
        AudioError: an unreadable audio file (named).
    """
    start, end = shard_range(len(utts), nshard, rank)
    part = list(utts[start:end])
    prefix = shard_prefix(feat_dir, rank, nshard)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    ids = [u.id for u in part]
    meta = {"source": source.describe(), "utterances": len(part), "first": ids[0] if ids else None,
            "last": ids[-1] if ids else None, "ids_hash": _hash_lines(ids)}
    done = shard_done(feat_dir, rank, nshard)
    if done is not None and done == {**meta, "frames": done.get("frames"), "dim": done.get("dim")}:
        log.info("%s: reusing the finished feature shard", prefix)
        return prefix

    expected = [expected_frames(u, source.label_rate) for u in part]
    total = int(sum(expected))
    out: np.ndarray | None = None
    tmp_npy = prefix.parent / (prefix.name + ".npy.tmp")
    row = 0
    bar = _progress(len(part), progress and len(part) > 0, f"features {rank}/{nshard}")
    max_samples = max(1, int(batch_seconds * 16000))
    for batch in _batches(part, max_samples):
        wavs = [load_audio(part[k].path) for k in batch]
        lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
        x = torch.zeros(len(wavs), int(lengths.max()))
        for b, w in enumerate(wavs):
            x[b, : len(w)] = torch.from_numpy(w)
        feats = source.extract(x, lengths)
        for k, f in zip(batch, feats):
            if f.shape[0] != expected[k]:
                raise LabelError(part[k].path, [f"{part[k].id}: {source.name} features have {f.shape[0]} frames, "
                                                f"expected {expected[k]} from the manifest's {part[k].num_samples} "
                                                "samples (does the manifest match the audio?)"])
            if out is None:
                out = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.float32, shape=(total, f.shape[1]))
            out[row : row + f.shape[0]] = f
            row += f.shape[0]
        bar.update(len(batch))
    bar.close()
    if out is None:  # an empty shard (more shards than utterances)
        with open(tmp_npy, "wb") as fh:
            np.save(fh, np.zeros((0, 0), dtype=np.float32), allow_pickle=False)
        dim = 0
    else:
        out.flush()
        dim = int(out.shape[1])
        del out  # closes the memory map before the rename
    os.replace(tmp_npy, f"{prefix}.npy")
    _write_text(Path(f"{prefix}.len"), "".join(f"{n}\n" for n in expected))
    _write_text(Path(f"{prefix}.ids"), "".join(f"{i}\n" for i in ids))
    _write_text(prefix.with_suffix(".json"), json.dumps({**meta, "frames": total, "dim": dim}, indent=1))
    return prefix


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _hash_lines(lines: Sequence[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="utt", leave=False, disable=not enabled)


__all__ = ["Shard", "dump_shard", "open_shard", "shard_done", "shard_prefix", "shard_range"]
