"""Label quality against phone alignments: the HuBERT paper's measures (fairseq's
``measure_teacher_quality.py``).

With ``p(y, z)`` the joint frequency of phone ``y`` and cluster ``z`` over all frames:

* phone purity ``= sum_z max_y p(y, z)``: how well the best phone of each cluster predicts it;
* cluster purity ``= sum_y max_z p(y, z)``: how well the best cluster of each phone predicts it;
* PNMI ``= I(y; z) / H(y)``: the fraction of phone uncertainty the labels remove.

Silence counts as a phone ("sil"), as in fairseq's measure. Frame ``i`` at 50 Hz covers samples
``[320 i, 320 i + 400)``; its phone is the aligned segment holding the frame's centre sample.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jooci.audio import SAMPLE_RATE
from jooci.data.manifest import Utterance
from jooci.features import WINDOW, hop_length
from jooci.fileio import atomic_write_text


@dataclass
class LabelQuality:
    k: int | str
    phone_purity: float
    cluster_purity: float
    pnmi: float
    mutual_information: float  # nats
    phone_entropy: float  # H(y), nats
    cluster_entropy: float  # H(z), nats
    clusters_used: int
    phones: int
    frames: int
    utterances: int

    def to_dict(self) -> dict:
        return asdict(self)


def frame_phones(utt: Utterance, n_frames: int, label_rate: int = 50) -> list[str | None]:
    """The phone under each frame's centre (None where the alignment has a gap)."""
    if not utt.alignment:
        raise ValueError(f"{utt.id}: no phone alignment")
    scale = utt.sample_rate / SAMPLE_RATE  # alignments count samples of the file as stored
    starts = np.array([s for _, s, _ in utt.alignment], dtype=np.float64)
    ends = np.array([e for _, _, e in utt.alignment], dtype=np.float64)
    centres = (np.arange(n_frames) * hop_length(label_rate) + WINDOW / 2) * scale
    seg = np.searchsorted(starts, centres, side="right") - 1
    out: list[str | None] = []
    for c, s in zip(centres, seg):
        out.append(utt.alignment[s][0] if s >= 0 and c < ends[s] else None)
    return out


def joint_counts(
    utts: Sequence[Utterance], label_rows: Sequence[Sequence[int]], label_rate: int = 50
) -> tuple[np.ndarray, list[str], np.ndarray, int]:
    """Counts ``(P, Z)`` of (phone, cluster) over frames of utterances that have alignments.

    Returns the count matrix, the phone names (rows), the cluster ids (columns) and how many
    utterances contributed.
    """
    phones: dict[str, int] = {}
    ys, zs = [], []
    used = 0
    for utt, row in zip(utts, label_rows):
        if not utt.alignment:
            continue
        used += 1
        row = np.asarray(row, dtype=np.int64)
        for ph, z in zip(frame_phones(utt, len(row), label_rate), row):
            if ph is None:
                continue
            ys.append(phones.setdefault(ph, len(phones)))
            zs.append(z)
    if not ys:
        raise ValueError("no aligned frames: the manifest has no phone alignments")
    y, z = np.asarray(ys), np.asarray(zs)
    cluster_ids, z_idx = np.unique(z, return_inverse=True)
    counts = np.zeros((len(phones), len(cluster_ids)), dtype=np.float64)
    np.add.at(counts, (y, z_idx), 1.0)
    return counts, list(phones), cluster_ids, used


def quality_from_counts(counts: np.ndarray, k: int | str = "?", utterances: int = 0) -> LabelQuality:
    """Purities and PNMI from a ``(phones, clusters)`` count matrix."""
    total = counts.sum()
    p = counts / total
    py, pz = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(py, pz)[nz])).sum())
    hy = float(-(py[py > 0] * np.log(py[py > 0])).sum())
    hz = float(-(pz[pz > 0] * np.log(pz[pz > 0])).sum())
    return LabelQuality(
        k=k, phone_purity=float(p.max(0).sum()), cluster_purity=float(p.max(1).sum()),
        pnmi=mi / hy if hy > 0 else 0.0, mutual_information=mi, phone_entropy=hy, cluster_entropy=hz,
        clusters_used=int((pz > 0).sum()), phones=int((py > 0).sum()), frames=int(total), utterances=utterances,
    )


def label_quality(utts: Sequence[Utterance], label_rows: Sequence[Sequence[int]], k: int | str = "?",
                  label_rate: int = 50) -> LabelQuality:
    """Phone purity, cluster purity and PNMI of ``label_rows`` against the manifest's alignments."""
    counts, _, _, used = joint_counts(utts, label_rows, label_rate)
    return quality_from_counts(counts, k, used)


def random_labels(label_rows: Sequence[Sequence[int]], k: int, seed: int = 0) -> list[np.ndarray]:
    """Uniform random labels with the same shape: the chance reference for PNMI."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, k, len(r)) for r in label_rows]


def quality_table(rows: Sequence[LabelQuality], random_rows: Sequence[LabelQuality] = ()) -> str:
    """A markdown table, one line per label set (and its random-label reference if given)."""
    rnd = {r.k: r for r in random_rows}
    head = ["| K | phone purity | cluster purity | PNMI | PNMI, random labels | clusters used | frames |",
            "|---|---|---|---|---|---|---|"]
    lines = []
    for q in rows:
        r = rnd.get(q.k)
        lines.append(f"| {q.k} | {q.phone_purity:.3f} | {q.cluster_purity:.3f} | {q.pnmi:.3f} | "
                     f"{r.pnmi:.3f} | {q.clusters_used} | {q.frames} |" if r else
                     f"| {q.k} | {q.phone_purity:.3f} | {q.cluster_purity:.3f} | {q.pnmi:.3f} | - | "
                     f"{q.clusters_used} | {q.frames} |")
    return "\n".join(head + lines)


def quality_of_label_folder(manifest: str | os.PathLike, labels_dir: str | os.PathLike) -> tuple[dict, str]:
    """Purity and PNMI of every label set in a ``jooci targets`` folder against the manifest's
    phone alignments, beside random labels with the same cluster sizes.

    Writes ``quality.json`` and ``quality.md`` into ``labels_dir`` and returns (that document, the
    table). Raises FileNotFoundError without label files, ValueError without alignments.
    """
    from jooci.data.manifest import read_manifest
    from jooci.targets.labels import read_labels
    from jooci.targets.pipeline import PROVENANCE

    labels_dir = Path(labels_dir)
    utts = read_manifest(manifest, check_durations=False)
    prov_path = labels_dir / PROVENANCE
    if prov_path.exists():
        prov = json.loads(prov_path.read_text())
        ks = sorted(int(k) for k in prov["label_sets"])
        rate = int(prov["label_rate"])
    else:
        ks = sorted(int(p.stem[1:]) for p in labels_dir.glob("k*.km") if p.stem[1:].isdigit())
        rate = 50
    if not ks:
        raise FileNotFoundError(f"{labels_dir}: no label files (k<K>.km)")
    if not any(u.alignment for u in utts):
        raise ValueError(f"{manifest}: no utterance has a phone alignment; quality needs them")
    rows, rnd = [], []
    for k in ks:
        labels = read_labels(labels_dir / f"k{k}.km", utts, rate, num_classes=k)
        rows.append(label_quality(utts, labels, k, rate))
        rnd.append(label_quality(utts, random_labels(labels, k, seed=0), k, rate))
    table = quality_table(rows, rnd)
    doc = {"manifest": str(manifest), "label_rate": rate,
           "label_sets": {str(q.k): q.to_dict() for q in rows},
           "random_labels": {str(q.k): q.to_dict() for q in rnd}}
    atomic_write_text(labels_dir / "quality.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(labels_dir / "quality.md", table + "\n")
    return doc, table


__all__ = ["LabelQuality", "quality_of_label_folder", "frame_phones", "joint_counts", "label_quality", "quality_from_counts",
           "quality_table", "random_labels"]
