"""Dump hidden states of a trained model over a manifest, in shards (for k-means, probing, SUPERB).

Layout of ``out_dir`` (fairseq ``simple_kmeans`` style, one array per layer so k-means can stream
one layer without touching the others)::

    shard_00000.layer09.npy   (frames_in_shard, D) float16/float32, utterances concatenated
    shard_00000.len           one frame count per line, in manifest order
    shard_00000.ids           one utterance id per line
    index.json                layers, dim, dtype, shards, skipped files (id, path, reason)

Files that cannot be read are skipped with a logged warning naming the file; the run fails
(:class:`ExtractError`) if more than ``max_skipped`` of the utterances had to be skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from jooci.audio import AudioError, load_audio
from jooci.data.manifest import Utterance

log = logging.getLogger(__name__)


class ExtractError(Exception):
    """Too many unreadable files, or a bad layer selection."""


@dataclass
class ExtractSummary:
    """What one run wrote: shard names, counts, and the skipped files (id, path, reason)."""

    out_dir: Path
    layers: list[int]
    num_utterances: int = 0
    num_frames: int = 0
    shards: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


class _ShardWriter:
    def __init__(self, out_dir: Path, layers: list[int], dtype: np.dtype):
        self.out_dir, self.layers, self.dtype = out_dir, layers, dtype
        self.feats: dict[int, list[np.ndarray]] = {k: [] for k in layers}
        self.lengths: list[int] = []
        self.ids: list[str] = []
        self.index = 0

    def add(self, utt_id: str, per_layer: dict[int, np.ndarray]) -> None:
        for k in self.layers:
            self.feats[k].append(per_layer[k].astype(self.dtype, copy=False))
        self.lengths.append(int(per_layer[self.layers[0]].shape[0]))
        self.ids.append(utt_id)

    def flush(self) -> str | None:
        if not self.ids:
            return None
        name = f"shard_{self.index:05d}"
        for k in self.layers:
            arr = np.concatenate(self.feats[k], axis=0)
            tmp = self.out_dir / f"{name}.layer{k:02d}.tmp.npy"
            np.save(tmp, arr)
            os.replace(tmp, self.out_dir / f"{name}.layer{k:02d}.npy")
        (self.out_dir / f"{name}.len").write_text("".join(f"{n}\n" for n in self.lengths))
        (self.out_dir / f"{name}.ids").write_text("".join(f"{i}\n" for i in self.ids))
        self.feats = {k: [] for k in self.layers}
        self.lengths, self.ids = [], []
        self.index += 1
        return name


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
        out_dir: created if needed.
        layers: indices into ``hidden_states`` (0: Transformer input, 1..L: Content layers,
            then Other blocks); None: all.
        batch_seconds: padded audio per batch (batch size x longest item), in seconds.
        progress: show a tqdm bar.
        shard_size: utterances per shard.
        dtype: "float16" (half the disk) or "float32".
        max_skipped: fail if more than this fraction of the utterances is unreadable.

    Returns:
        An :class:`ExtractSummary` (also written as ``index.json``).

    Raises:
        ExtractError: a layer index out of range, or too many unreadable files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np_dtype = np.dtype({"float16": np.float16, "float32": np.float32}[dtype])
    model.eval()
    device = next(model.parameters()).device
    summary = ExtractSummary(out, [])
    writer: _ShardWriter | None = None
    max_samples = int(batch_seconds * 16000)

    def run(batch: list[tuple[Utterance, np.ndarray]]) -> None:
        nonlocal writer
        longest = max(len(w) for _, w in batch)
        wav = torch.zeros(len(batch), longest)
        for i, (_, w) in enumerate(batch):
            wav[i, : len(w)] = torch.from_numpy(w)
        lengths = torch.tensor([len(w) for _, w in batch])
        with torch.inference_mode():
            feats = model.extract_features(wav.to(device), lengths.to(device))  # type: ignore[operator]
        n_states = len(feats.hidden_states)
        if writer is None:
            chosen = list(range(n_states)) if layers is None else [int(k) for k in layers]
            bad = [k for k in chosen if not 0 <= k < n_states]
            if bad:
                raise ExtractError(f"layers {bad} out of range: the model has {n_states} hidden states")
            summary.layers = chosen
            writer = _ShardWriter(out, chosen, np_dtype)
        for i, (utt, _) in enumerate(batch):
            n = int(feats.lengths[i])
            writer.add(utt.id, {k: feats.hidden_states[k][i, :n].float().cpu().numpy() for k in writer.layers})
            summary.num_utterances += 1
            summary.num_frames += n
            if len(writer.ids) >= shard_size:
                name = writer.flush()
                if name:
                    summary.shards.append(name)

    batch: list[tuple[Utterance, np.ndarray]] = []
    bar = tqdm(utterances, desc="extract", unit="utt", disable=not progress)
    for utt in bar:
        try:
            wav = load_audio(utt.path)
        except AudioError as e:
            log.warning("skipping %s: %s", utt.id, e)
            summary.skipped.append({"id": utt.id, "path": str(utt.path), "reason": e.reason})
            bar.set_postfix(skipped=len(summary.skipped))
            continue
        if batch and max(len(wav), max(len(w) for _, w in batch)) * (len(batch) + 1) > max_samples:
            run(batch)
            batch = []
        batch.append((utt, wav))
    if batch:
        run(batch)
    if writer is not None:
        name = writer.flush()
        if name:
            summary.shards.append(name)
    total = len(utterances)
    index = {"layers": summary.layers, "dtype": dtype, "num_utterances": summary.num_utterances,
             "num_frames": summary.num_frames, "shards": summary.shards, "skipped": summary.skipped}
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    if summary.skipped:
        log.warning("skipped %d of %d files (listed in %s)", len(summary.skipped), total, out / "index.json")
    if total and len(summary.skipped) > max_skipped * total:
        first = "; ".join(f"{s['path']}: {s['reason']}" for s in summary.skipped[:5])
        raise ExtractError(f"{len(summary.skipped)} of {total} files unreadable (more than "
                           f"{max_skipped:.0%}); first: {first}")
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
    """
    from jooci.data.manifest import read_manifest
    from jooci.hub import load

    module = model.to(device) if isinstance(model, nn.Module) else load(model, map_location=device)
    utts = read_manifest(manifest, check_files=False, check_durations=False)
    return extract_to_shards(module, utts, out, layers=layers, batch_seconds=batch_seconds, progress=progress,
                             shard_size=shard_size, dtype=dtype, max_skipped=max_skipped)
