"""Dump hidden states of a trained model over a manifest, in shards (for k-means, probing, SUPERB).

Layout of ``out_dir`` (a :mod:`jooci.store` folder: one array per layer, so k-means can stream
one layer without touching the others)::

    shard_00000.layer09.npy   (frames_in_shard, D) float16/float32, utterances concatenated
    shard_00000.len           one frame count per line, in manifest order
    shard_00000.ids           one utterance id per line
    shard_00000.json          the shard's index (written last)
    index.json                layers, dim, dtype, shards, skipped files (id, path, reason)

Files that cannot be read are skipped with a logged warning naming the file (:class:`jooci.store.SkipPolicy`);
the run fails (:class:`ExtractError`) as soon as more than ``max_skipped`` of the utterances had to be skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from jooci.audio import SAMPLE_RATE
from jooci.data.manifest import Utterance
from jooci.padding import pad_waveforms
from jooci.store import DTYPES, ExtractError, SkipPolicy, StoreWriter, TooManySkippedError


@dataclass
class ExtractSummary:
    """What one run wrote: shard names, counts, and the skipped files (id, path, reason)."""

    out_dir: Path
    layers: list[int]
    num_utterances: int = 0
    num_frames: int = 0
    shards: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def extract_to_shards(
    model: nn.Module,
    utterances: Sequence[Utterance],
    out_dir: str | os.PathLike,
    layers: Sequence[int] | None = None,
    batch_seconds: float = 60.0,
    progress: bool = True,
    shard_size: int = 1000,
    dtype: str = "float16",
    max_skipped: float = 0.05,
) -> ExtractSummary:
    """Run ``model.extract_features`` over ``utterances`` and write shards into ``out_dir``.

    Args:
        model: a JOOCI or HuBERTBaseline (put in eval mode here; runs on its own device).
        utterances: manifest records; audio is read with :func:`jooci.audio.load_audio`.
        out_dir: created if needed; an earlier run's shards there are replaced.
        layers: indices into ``hidden_states`` (0: Transformer input, 1..L: Content layers,
            then Other blocks); None: all.
        batch_seconds: padded audio per batch (batch size x longest item), in seconds.
        progress: show a tqdm bar.
        shard_size: utterances per shard.
        dtype: "float16" (half the disk) or "float32".
        max_skipped: fail once more than this fraction of the utterances is unreadable.

    Returns:
        An :class:`ExtractSummary` (also written as ``index.json``).

    Raises:
        ExtractError: a layer index out of range, or too many unreadable files
            (:class:`jooci.store.TooManySkippedError`, naming the first of them).
    """
    if dtype not in DTYPES:
        raise ExtractError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    out = Path(out_dir)
    model.eval()
    device = next(model.parameters()).device
    summary = ExtractSummary(out, [])
    writer = StoreWriter(out, layers=None if layers is None else [int(k) for k in layers], dtype=dtype,
                         shard_size=shard_size)
    policy = SkipPolicy(max_skipped, total=len(utterances))
    max_samples = int(batch_seconds * SAMPLE_RATE)
    chosen: list[int] | None = None

    def run(batch: list[tuple[Utterance, np.ndarray]]) -> None:
        nonlocal chosen
        wav, lengths = pad_waveforms([w for _, w in batch])
        with torch.inference_mode():
            feats = model.extract_features(wav.to(device), lengths.to(device))  # type: ignore[operator]
        n_states = len(feats.hidden_states)
        if chosen is None:
            chosen = list(range(n_states)) if layers is None else [int(k) for k in layers]
            bad = [k for k in chosen if not 0 <= k < n_states]
            if bad:
                raise ExtractError(f"layers {bad} out of range: the model has {n_states} hidden states")
            writer.layers = summary.layers = chosen
        states = {k: feats.hidden_states[k].float().cpu().numpy() for k in chosen}  # one copy per layer
        for i, (utt, _) in enumerate(batch):
            n = int(feats.lengths[i])
            writer.add(utt.id, {k: states[k][i, :n] for k in chosen})

    batch: list[tuple[Utterance, np.ndarray]] = []
    bar = tqdm(utterances, desc="extract", unit="utt", disable=not progress)
    try:
        for utt in bar:
            wav = policy.load_audio(utt.id, utt.path)
            if wav is None:
                bar.set_postfix(skipped=len(policy.skipped))
                continue
            if batch and max(len(wav), max(len(w) for _, w in batch)) * (len(batch) + 1) > max_samples:
                run(batch)
                batch = []
            batch.append((utt, wav))
        if batch:
            run(batch)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    if writer.layers is None:  # nothing was readable: no shard, the layers asked for
        writer.layers = summary.layers = [] if layers is None else [int(k) for k in layers]
    index = writer.close(skipped=policy.skipped)
    summary.num_utterances, summary.num_frames = index["num_utterances"], index["num_frames"]
    summary.shards, summary.skipped = list(index["shards"]), list(policy.skipped)
    return summary


def extract_manifest(
    model: str | os.PathLike | nn.Module,
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    *,
    layers: Sequence[int] | None = None,
    batch_seconds: float = 60.0,
    shard_size: int = 1000,
    dtype: str = "float16",
    device: str = "cpu",
    max_skipped: float = 0.05,
    progress: bool = True,
) -> ExtractSummary:
    """``jooci extract``: load ``model`` (a model folder, or a module moved to ``device``) and the
    JSONL ``manifest``, write the shards into ``out``. Arguments as :func:`extract_to_shards`.

    Unreadable files are skipped and counted during extraction, not refused up front.

    Raises:
        ExtractError: a layer index out of range, or too many unreadable files.
        jooci.hub.CheckpointError: a model folder that cannot be loaded.
        jooci.data.manifest.ManifestError: a manifest that cannot be read.
    """
    from jooci.data.manifest import read_manifest
    from jooci.hub import load

    module = model.to(device) if isinstance(model, nn.Module) else load(model, map_location=device)
    utts = read_manifest(manifest, check_files=False, check_durations=False)
    return extract_to_shards(module, utts, out, layers=layers, batch_seconds=batch_seconds, progress=progress,
                             shard_size=shard_size, dtype=dtype, max_skipped=max_skipped)


__all__ = ["ExtractError", "ExtractSummary", "TooManySkippedError", "extract_manifest", "extract_to_shards"]
