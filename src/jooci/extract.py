"""Dump hidden states of a trained model over a manifest, in shards (for k-means, probing, SUPERB).

Layout of ``out_dir`` (a :mod:`jooci.store` folder: one array per layer, so k-means can stream
one layer without touching the others)::

    shard_00000.layer09.npy   (frames_in_shard, D) float16/float32, utterances concatenated
    shard_00000.len           one frame count per line, in manifest order
    shard_00000.ids           one utterance id per line
    shard_00000.json          the shard's index (written last)
    index.json                layers, dim, dtype, shards, skipped files (id, path, reason)

Files that cannot be read, and files whose length is not the manifest's ``num_samples``, are
skipped with a logged warning naming the file (:class:`jooci.store.SkipPolicy`); the run fails
(:class:`ExtractError`) as soon as more than ``max_skipped`` of the utterances had to be skipped.

Long files are extracted in windows, so the model's memory does not grow with a file's length
(attention over a whole three-hour file would need ~3 x 10^11 scores per head and layer); the
waveform itself is held whole (4 bytes a sample: 0.7 GB for three hours at 16 kHz). The rule
(:func:`chunk_windows`): a file of at most ``chunk_seconds + 2 * context_seconds`` runs whole,
exactly as before. A longer one is cut on the 20 ms frame grid into chunks of ``chunk_seconds``;
each chunk runs with up to ``context_seconds`` of audio either side (less at the file's ends), and
only the chunk's own frames are kept. Windows start on a multiple of the 320-sample hop, so frame
``f`` of a window is frame ``start / 320 + f`` of the file, computed from the same samples, and the
kept frames add up to the file's frame count exactly. What differs from one pass over the whole
file is only what a frame can see beyond its own samples: the Transformer attends, and the first
CNN layer's group norm normalises, within the window instead of the whole file. Each kept frame
is exactly the model's output for its window (tests/test_extract.py checks this), with at least
``context_seconds`` of context on each side. Chunked files are counted in ``index.json``
(``chunked``) and logged; the features are then written block by block.
"""

from __future__ import annotations

import os
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jooci.audio import SAMPLE_RATE, resampled_length
from jooci.data.manifest import Utterance
from jooci.features import WINDOW, hop_length, num_frames
from jooci.padding import pad_waveforms
from jooci.progress import progress as progress_bar
from jooci.store import DTYPES, ExtractError, SkipPolicy, StoreWriter, TooManySkippedError

log = logging.getLogger(__name__)

CHUNK_SECONDS = 30.0
"""Default chunk of a long file (seconds of audio whose frames one window keeps)."""

CONTEXT_SECONDS = 5.0
"""Default context on each side of a chunk (at least twice the ~1.3 s half-width of the
positional convolution, so its whole kernel sees real audio)."""

HOP = hop_length(50)

@dataclass
class ExtractSummary:
    """What one run wrote: shard names, counts, and the skipped files (id, path, reason)."""

    out_dir: Path
    layers: list[int]
    num_utterances: int = 0
    num_frames: int = 0
    shards: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunked: int = 0  # files extracted in windows (longer than chunk + 2 x context)


def chunk_windows(num_samples: int, chunk_seconds: float = CHUNK_SECONDS,
                  context_seconds: float = CONTEXT_SECONDS) -> list[tuple[int, int, int, int]]:
    """The windows a file of ``num_samples`` (16 kHz) is extracted in (rule: module docstring).

    Returns ``(start, end, first, count)`` per window: the window is samples ``[start, end)``, and
    its frames ``[first, first + count)`` are the file's frames ``[start // 320 + first, ...)``.
    One window ``(0, num_samples, 0, all frames)`` when the file is short enough to run whole.
    """
    if not chunk_seconds > 0 or not context_seconds >= 0:
        raise ExtractError(f"need chunk_seconds > 0 and context_seconds >= 0, got {chunk_seconds}, {context_seconds}")
    chunk = max(1, round(chunk_seconds * SAMPLE_RATE / HOP))  # frames
    context = round(context_seconds * SAMPLE_RATE / HOP)
    total = num_frames(num_samples)
    if total <= chunk + 2 * context:
        return [(0, num_samples, 0, total)]
    out = []
    for begin in range(0, total, chunk):
        end = min(begin + chunk, total)
        first = max(0, begin - context)
        # frame f covers samples [f * HOP, f * HOP + WINDOW): the last kept frame plus the right
        # context needs samples up to (end + context) * HOP + WINDOW - HOP
        stop = min(num_samples, (end + context) * HOP + WINDOW - HOP)
        out.append((first * HOP, stop, begin - first, end - begin))
    return out


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
    chunk_seconds: float = CHUNK_SECONDS,
    context_seconds: float = CONTEXT_SECONDS,
) -> ExtractSummary:
    """Run ``model.extract_features`` over ``utterances`` and write shards into ``out_dir``.

    Args:
        model: a JOOCI or HuBERTBaseline (put in eval mode here; runs on its own device).
        utterances: manifest records; audio is read with :func:`jooci.audio.load_audio`.
        out_dir: created if needed; an earlier run's shards there are replaced.
        layers: indices into ``hidden_states`` (0: Transformer input, 1..L: Content layers,
            then Other blocks); None: all.
        batch_seconds: padded audio per batch (batch size x longest item), in seconds.
        progress: show a progress bar (plain log lines when stderr is not a terminal).
        shard_size: utterances per shard.
        dtype: "float16" (half the disk) or "float32".
        max_skipped: fail once more than this fraction of the utterances is unreadable.
        chunk_seconds, context_seconds: how files longer than ``chunk_seconds + 2 *
            context_seconds`` are cut into windows (module docstring, :func:`chunk_windows`).

    Returns:
        An :class:`ExtractSummary` (also written as ``index.json``).

    Raises:
        ExtractError: a layer index out of range, or too many unreadable files
            (:class:`jooci.store.TooManySkippedError`, naming the first of them).
    """
    if dtype not in DTYPES:
        raise ExtractError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    chunk_windows(WINDOW, chunk_seconds, context_seconds)  # the settings checked before any work
    out = Path(out_dir)
    model.eval()
    device = next(model.parameters()).device
    summary = ExtractSummary(out, [])
    writer = StoreWriter(out, layers=None if layers is None else [int(k) for k in layers], dtype=dtype,
                         shard_size=shard_size)
    policy = SkipPolicy(max_skipped, total=len(utterances))
    max_samples = int(batch_seconds * SAMPLE_RATE)
    chosen: list[int] | None = None

    def forward(wavs: list[np.ndarray]):
        nonlocal chosen
        wav, lengths = pad_waveforms(wavs)
        with torch.inference_mode():
            feats = model.extract_features(wav.to(device), lengths.to(device))  # type: ignore[operator]
        n_states = len(feats.hidden_states)
        if chosen is None:
            chosen = list(range(n_states)) if layers is None else [int(k) for k in layers]
            bad = [k for k in chosen if not 0 <= k < n_states]
            if bad:
                raise ExtractError(f"layers {bad} out of range: the model has {n_states} hidden states")
            writer.layers = summary.layers = chosen
        return feats, {k: feats.hidden_states[k].float().cpu().numpy() for k in chosen}  # one copy per layer

    def run(batch: list[tuple[Utterance, np.ndarray]]) -> None:
        feats, states = forward([w for _, w in batch])
        for i, (utt, _) in enumerate(batch):
            n = int(feats.lengths[i])
            writer.add(utt.id, {k: states[k][i, :n] for k in chosen})

    def run_windows(utt: Utterance, wav: np.ndarray, windows: list[tuple[int, int, int, int]]) -> None:
        log.info("%s: %.0f s, extracted in %d windows of at most %g + 2 x %g s", utt.path, len(wav) / SAMPLE_RATE,
                 len(windows), chunk_seconds, context_seconds)

        def pieces() -> Iterator[dict[int, np.ndarray]]:
            for start, stop, first, count in windows:
                feats, states = forward([wav[start:stop]])
                if int(feats.lengths[0]) < first + count:
                    raise ExtractError(f"{utt.path}: the model gave {int(feats.lengths[0])} frames for samples "
                                       f"{start}..{stop}, {first + count} expected")
                yield {k: states[k][0, first:first + count] for k in chosen}

        it = pieces()
        head = next(it)  # the first window fixes the layers before the writer opens a shard
        writer.add_parts(utt.id, itertools.chain([head], it))
        summary.chunked += 1

    batch: list[tuple[Utterance, np.ndarray]] = []
    bar = progress_bar(utterances, desc="extract", unit="utt", enabled=progress)
    try:
        for utt in bar:
            wav = policy.load_audio(utt.id, utt.path)
            if wav is not None:
                expected = resampled_length(utt.num_samples, utt.sample_rate)
                if len(wav) != expected:  # a manifest that does not describe this file
                    policy.skip(utt.id, utt.path, f"holds {len(wav)} samples at {SAMPLE_RATE} Hz, the manifest's "
                                                  f"num_samples {utt.num_samples} at {utt.sample_rate} Hz make {expected}")
                    wav = None
            if wav is None:
                bar.set_postfix(skipped=len(policy.skipped))
                continue
            windows = chunk_windows(len(wav), chunk_seconds, context_seconds)
            if len(windows) > 1:
                if batch:
                    run(batch)
                    batch = []
                run_windows(utt, wav, windows)
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
    index = writer.close(skipped=policy.skipped, chunked=summary.chunked)
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
    chunk_seconds: float = CHUNK_SECONDS,
    context_seconds: float = CONTEXT_SECONDS,
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
                             shard_size=shard_size, dtype=dtype, max_skipped=max_skipped,
                             chunk_seconds=chunk_seconds, context_seconds=context_seconds)


__all__ = ["CHUNK_SECONDS", "CONTEXT_SECONDS", "ExtractError", "ExtractSummary", "TooManySkippedError", "chunk_windows",
           "extract_manifest", "extract_to_shards"]
