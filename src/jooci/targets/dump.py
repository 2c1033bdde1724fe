"""Feature dumping in shards, fairseq-style: shard ``r`` of ``n`` holds a contiguous slice of the
manifest, written as ``feat_{r}_{n}.npy`` (all frames, ``(sum T_i, D)`` float32), ``.len`` (frames
per utterance, one per line) and ``.ids`` (utterance ids), so machines can share the work and the
concatenation of the shards is the manifest in order. Each shard is a one-array
:mod:`jooci.store` shard: fairseq's ``learn_kmeans.py`` reads the ``.npy``/``.len`` pair as is.

Unlike fairseq, the ``.npy`` is written through a memory map sized from the manifest up front (no
shard is held in memory), every utterance's frame count is checked against the CNN's count as it
is written, and a finished shard (its ``.json`` index written last) is reused, not recomputed.
Labels must cover every utterance, so an unreadable file fails the dump (the store's
:class:`~jooci.store.SkipPolicy` with a limit of 0, naming the file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from jooci.audio import SAMPLE_RATE
from jooci.data.manifest import Utterance
from jooci.padding import pad_waveforms
from jooci.store import Shard, ShardWriter, SkipPolicy, hash_lines, open_shard as _open_store_shard, shard_info
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


def shard_done(feat_dir: str | os.PathLike, rank: int, nshard: int) -> dict | None:
    """The index of a finished shard (``meta``: its source and ids; ``dim``, ``frames``), or None."""
    return shard_info(shard_prefix(feat_dir, rank, nshard))


def open_shard(feat_dir: str | os.PathLike, rank: int, nshard: int) -> Shard:
    """Open a finished shard (features memory-mapped).

    Raises:
        jooci.store.IncompleteShardError: (a FileNotFoundError) the shard is missing or unfinished.
        jooci.store.StoreError: its files disagree with its index.
    """
    return _open_store_shard(shard_prefix(feat_dir, rank, nshard))


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
        jooci.store.TooManySkippedError: an unreadable audio file (named; a ValueError).
    """
    start, end = shard_range(len(utts), nshard, rank)
    part = list(utts[start:end])
    prefix = shard_prefix(feat_dir, rank, nshard)
    ids = [u.id for u in part]
    meta = {"source": source.describe(), "first": ids[0] if ids else None, "last": ids[-1] if ids else None}
    done = shard_done(feat_dir, rank, nshard)
    if (done is not None and done["meta"] == meta and done["utterances"] == len(part)
            and done["ids_sha256"] == hash_lines(ids) and done["dtype"] == "float32" and done["layers"] is None):
        log.info("%s: reusing the finished feature shard", prefix)
        return prefix

    expected = [expected_frames(u, source.label_rate) for u in part]
    policy = SkipPolicy(0.0, total=len(part), hint="k-means labels must cover every utterance of the manifest")
    bar = _progress(len(part), progress and len(part) > 0, f"features {rank}/{nshard}")
    max_samples = max(1, int(batch_seconds * SAMPLE_RATE))
    with ShardWriter(prefix, dtype="float32", frames=int(sum(expected)), meta=meta) as writer:
        for batch in _batches(part, max_samples):
            wavs = [policy.load_audio(part[k].id, part[k].path) for k in batch]  # raises on the first bad file
            x, lengths = pad_waveforms(wavs)
            feats = source.extract(x, lengths)
            for k, f in zip(batch, feats):
                if f.shape[0] != expected[k]:
                    raise LabelError(part[k].path, [f"{part[k].id}: {source.name} features have {f.shape[0]} "
                                                    f"frames, expected {expected[k]} from the manifest's "
                                                    f"{part[k].num_samples} samples (does the manifest match "
                                                    "the audio?)"])
                writer.add(part[k].id, f)
            bar.update(len(batch))
    bar.close()
    return prefix


def _progress(total: int, enabled: bool, desc: str):
    from jooci.progress import progress

    return progress(total=total, desc=desc, unit="utt", leave=False, enabled=enabled)


__all__ = ["Shard", "dump_shard", "open_shard", "shard_done", "shard_prefix", "shard_range"]
