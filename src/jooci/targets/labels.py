"""Label files checked against their manifest before anything trains on them.

fairseq trains on a label file whose rows are shifted by one missing line, or whose frame rate is
wrong, and says nothing (fairseq #5005, #5097; PR #4521). Here every label row is compared with
the frame count its utterance's audio gives at the label rate (:func:`jooci.features.num_frames`,
the CNN's count at 50 Hz); a missing or extra row is located and the utterance named.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jooci.audio import SAMPLE_RATE, resampled_length
from jooci.data.manifest import ManifestError, Utterance, read_label_file
from jooci.features import num_frames


class LabelError(ManifestError):
    """Label rows that do not fit their manifest (a :class:`ManifestError`, so one ``except`` catches
    both); the message names each utterance and the expected vs found frame counts."""


def expected_frames(utt: Utterance, label_rate: int = 50) -> int:
    """Frames the model sees for ``utt`` at ``label_rate`` (after resampling to 16 kHz)."""
    return num_frames(resampled_length(utt.num_samples, utt.sample_rate, SAMPLE_RATE), label_rate)


def validate_labels(
    manifest_utts: Sequence[Utterance],
    label_rows: Sequence[Sequence[int] | np.ndarray],
    label_rate: int = 50,
    *,
    tolerance: int = 0,
    ids: Sequence[str] | None = None,
    num_classes: int | None = None,
    path: str | os.PathLike = "<labels>",
) -> None:
    """Check label rows against a manifest: count, order, frame counts, label range.

    Args:
        manifest_utts: the manifest, in its order.
        label_rows: one row of integer labels per utterance, same order.
        label_rate: frames per second of the labels (50: the CNN's rate; 100: fairseq MFCC labels).
        tolerance: accepted ``|found - expected|`` frames. 0 by default: labels made by
            ``jooci targets`` have exactly the CNN's count. Use 1 for label files made elsewhere
            (e.g. with ``snip_edges=False`` framing).
        ids: the utterance ids the labels were made for, if known (``jooci targets`` records them):
            checks the order, which frame counts alone cannot prove.
        num_classes: if given, every label must be in ``[0, num_classes)``.
        path: named in the error.

    Raises:
        LabelError: listing every problem (first ten spelled out): rows missing or extra (located
            by matching frame counts, the utterance named), per-utterance ``expected vs found``
            frame counts, ids out of order, labels out of range.
    """
    problems: list[str] = []
    n_u, n_r = len(manifest_utts), len(label_rows)
    if ids is not None:
        if len(ids) != n_u:
            problems.append(f"labels were made for {len(ids)} utterances, the manifest has {n_u}")
        else:
            bad = [(k, a, u.id) for k, (a, u) in enumerate(zip(ids, manifest_utts)) if a != u.id]
            if bad:
                k, a, b = bad[0]
                problems.append(f"utterance order differs from the manifest's ({len(bad)} positions): "
                                f"position {k + 1} is {b!r} in the manifest, {a!r} in the labels")
    if n_r != n_u:
        problems.append(f"{n_r} label rows for {n_u} utterances in the manifest")
    expected = [expected_frames(u, label_rate) for u in manifest_utts]
    found = [len(r) for r in label_rows]

    def fits(e: int, f: int) -> bool:
        return abs(e - f) <= tolerance

    i = j = 0
    while i < n_u and j < n_r:
        e, f = expected[i], found[j]
        if fits(e, f):
            i, j = i + 1, j + 1
        elif n_u - i > n_r - j and i + 1 < n_u and fits(expected[i + 1], f):
            problems.append(f"{manifest_utts[i].id}: no label row (expected {e} frames at {label_rate} Hz; "
                            f"label line {j + 1} fits the next utterance)")
            i += 1
        elif n_r - j > n_u - i and j + 1 < n_r and fits(e, found[j + 1]):
            problems.append(f"label line {j + 1}: extra row of {f} labels before {manifest_utts[i].id}'s")
            j += 1
        else:
            problems.append(f"{manifest_utts[i].id} (label line {j + 1}): expected {e} frames at "
                            f"{label_rate} Hz, found {f}")
            i, j = i + 1, j + 1
    problems += [f"{u.id}: no label row (expected {expected[k]} frames)" for k, u in enumerate(manifest_utts[i:], i)]
    problems += [f"label line {k + 1}: extra row of {found[k]} labels after the last utterance" for k in range(j, n_r)]

    if num_classes is not None:
        for k, (u, r) in enumerate(zip(manifest_utts, label_rows)):
            r = np.asarray(r)
            if r.size and (int(r.min()) < 0 or int(r.max()) >= num_classes):
                problems.append(f"{u.id} (label line {k + 1}): labels outside [0, {num_classes})")
    if problems:
        raise LabelError(path, problems)


def read_labels(
    path: str | os.PathLike,
    manifest_utts: Sequence[Utterance],
    label_rate: int = 50,
    **kwargs,
) -> list[np.ndarray]:
    """Read a label file and :func:`validate_labels` it; returns one int64 array per utterance."""
    rows = read_label_file(path)
    validate_labels(manifest_utts, rows, label_rate, path=path, **kwargs)
    return [np.asarray(r, dtype=np.int64) for r in rows]


def label_file(out_dir: str | os.PathLike, k: int) -> Path:
    """Where ``jooci targets`` writes the labels of the K-cluster set."""
    return Path(out_dir) / f"k{k}.km"


def centroids_file(out_dir: str | os.PathLike, k: int) -> Path:
    return Path(out_dir) / f"k{k}.centroids.npy"


__all__ = ["LabelError", "centroids_file", "expected_frames", "label_file", "read_labels", "validate_labels"]
