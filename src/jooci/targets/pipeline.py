"""The label pipeline: dump features in shards, fit k-means for several K, label every frame,
merge, validate against the manifest, record provenance.

Output folder::

    features/feat_{r}_{n}.{npy,len,ids,json}   shard r of n (json written last: shard finished)
    k{K}.centroids.npy                         (K, D) float32
    labels/k{K}_{r}_{n}.km                     label shards
    k{K}.km                                    one line per utterance, manifest order, 50 Hz
    targets.json                               provenance (written last: labels finished)

Steps (``--step``) let several machines share the work: each runs ``dump`` and later ``label``
for its ``--rank``; one runs ``fit`` once every shard is dumped and ``merge`` once every shard is
labelled. ``all`` (the default) runs everything here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from jooci.data.manifest import Utterance, read_label_file, read_manifest, write_label_file
from jooci.fileio import atomic_path, atomic_write_json
from jooci.store import hash_lines as _hash_lines
from jooci.targets.dump import dump_shard, open_shard, shard_done
from jooci.targets.kmeans import KMeansError, assign, fit_kmeans, sample_features
from jooci.targets.labels import LabelError, centroids_file, label_file, read_labels, validate_labels
from jooci.targets.sources import FeatureSource

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PROVENANCE = "targets.json"
STEPS = ("dump", "fit", "label", "merge")


@dataclass(frozen=True)
class TargetsConfig:
    """k-means and sharding settings (the feature source is passed separately)."""

    ks: tuple[int, ...] = (100, 500, 1000)
    fraction: float = 0.1  # of the utterances the k-means sample is drawn from (fairseq: 10%)
    seed: int = 0
    backend: str = "faiss"  # or "sklearn"
    niter: int = 50
    max_frames: int | None = 2_000_000  # cap on the k-means sample (memory: N x D x 4 bytes)
    nshard: int = 1
    batch_seconds: float = 60.0  # padded audio per feature batch
    threads: int | None = None  # k-means threads (None: 1 for small fits, all cores for large ones)

    def validate(self) -> None:
        if not self.ks or any(k < 2 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct integers >= 2, got {self.ks}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.nshard < 1:
            raise ValueError(f"nshard must be >= 1, got {self.nshard}")


def manifest_fingerprint(utts: Sequence[Utterance]) -> str:
    """sha256 over ``id<TAB>num_samples`` lines in order: what labels depend on (paths may move)."""
    return _hash_lines([f"{u.id}\t{u.num_samples}" for u in utts])


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_targets(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    source: FeatureSource,
    cfg: TargetsConfig,
    *,
    steps: Sequence[str] = STEPS,
    ranks: Sequence[int] | None = None,
    centroids_from: str | os.PathLike | None = None,
    progress: bool = True,
    utts: Sequence[Utterance] | None = None,
) -> dict | None:
    """Run the pipeline's ``steps`` for shards ``ranks`` (default: all); returns the provenance
    record after ``merge``, else None.

    Args:
        manifest: the JSONL manifest (read and checked unless ``utts`` is given).
        out_dir: the output folder (layout in the module docstring).
        source: the feature source (:func:`jooci.targets.sources.mfcc_source`, ...).
        cfg: K values, sample fraction, seed, backend, shards.
        steps: any of ``dump``, ``fit``, ``label``, ``merge``, in that order.
        ranks: the shards this call dumps / labels.
        centroids_from: an earlier output folder whose centroids to apply instead of fitting
            (labels for a dev split with the pretraining split's clusters).
        progress: show progress bars.
        utts: the manifest's records, if already read.
    """
    cfg.validate()
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; steps are {STEPS}")
    manifest = Path(manifest)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    feat_dir = out / "features"
    utts = list(utts) if utts is not None else read_manifest(manifest)
    if not utts:
        raise LabelError(manifest, ["the manifest has no utterances"])
    ranks = list(range(cfg.nshard)) if ranks is None else list(ranks)
    times: dict[str, float] = {}

    if "dump" in steps:
        t0 = time.perf_counter()
        for r in ranks:
            dump_shard(utts, source, feat_dir, cfg.nshard, r, batch_seconds=cfg.batch_seconds, progress=progress)
        times["dump"] = time.perf_counter() - t0

    if "fit" in steps:
        t0 = time.perf_counter()
        _fit(out, feat_dir, cfg, source, centroids_from)
        times["fit"] = time.perf_counter() - t0

    if "label" in steps:
        t0 = time.perf_counter()
        for r in ranks:
            _label_shard(out, feat_dir, cfg, r)
        times["label"] = time.perf_counter() - t0

    if "merge" in steps:
        t0 = time.perf_counter()
        record = _merge(manifest, out, feat_dir, source, cfg, utts, centroids_from)
        times["merge"] = time.perf_counter() - t0
        record["seconds"] = {k: round(v, 3) for k, v in times.items()}
        _write_json(out / PROVENANCE, record)
        return record
    return None


def _fit(out: Path, feat_dir: Path, cfg: TargetsConfig, source: FeatureSource, centroids_from) -> None:
    missing = [r for r in range(cfg.nshard) if shard_done(feat_dir, r, cfg.nshard) is None]
    if missing:
        raise KMeansError(f"{feat_dir}: feature shard(s) {missing} of {cfg.nshard} are not dumped yet")
    info: dict = {"backend": cfg.backend, "ks": list(cfg.ks), "fraction": cfg.fraction, "seed": cfg.seed,
                  "niter": cfg.niter, "max_frames": cfg.max_frames, "sets": {}}
    if centroids_from is not None:
        src = Path(centroids_from)
        prev = src / PROVENANCE
        if prev.exists():  # centroids only mean something for the features they were fitted on
            theirs = {k: v for k, v in json.loads(prev.read_text())["features"].items() if k != "dim"}
            if theirs != source.describe():
                raise KMeansError(f"{src}: centroids were fitted on {theirs}, these features are {source.describe()}")
        for k in cfg.ks:
            if not centroids_file(src, k).exists():
                raise KMeansError(f"{centroids_file(src, k)}: no K={k} centroids to apply")
            with atomic_path(centroids_file(out, k)) as tmp:
                shutil.copyfile(centroids_file(src, k), tmp)
        info["centroids_from"] = str(src.resolve())
        if prev.exists():  # carry the fit's own record forward
            info = {**json.loads(prev.read_text())["kmeans"], "centroids_from": str(src.resolve())}
        _write_json(out / "kmeans.json", info)
        return
    sample = sample_features(feat_dir, cfg.nshard, cfg.fraction, cfg.seed, cfg.max_frames)
    info.update(sampled_utterances=sample.utterances, sampled_frames=int(len(sample.features)),
                total_utterances=sample.total_utterances, total_frames=sample.total_frames)
    for k in cfg.ks:
        res = fit_kmeans(sample.features, k, seed=cfg.seed, backend=cfg.backend, niter=cfg.niter,
                         threads=cfg.threads)
        with atomic_path(centroids_file(out, k)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, res.centroids, allow_pickle=False)
        info["sets"][str(k)] = {"inertia": round(res.inertia, 6), "fit_seconds": round(res.seconds, 3)}
        info["backend"] = res.backend  # the one that ran: "faiss" falls back to "sklearn" without faiss-cpu
        log.info("k-means K=%d on %d frames: inertia %.4g in %.1f s", k, len(sample.features), res.inertia, res.seconds)
    _write_json(out / "kmeans.json", info)


def _label_shard(out: Path, feat_dir: Path, cfg: TargetsConfig, rank: int) -> None:
    shard = open_shard(feat_dir, rank, cfg.nshard)
    for k in cfg.ks:
        path = centroids_file(out, k)
        if not path.exists():
            raise KMeansError(f"{path}: no centroids for K={k}: run the fit step first")
        try:
            c = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:  # an object array, a damaged or foreign file
            raise KMeansError(f"{path}: not a centroid array ({e})") from None
        if c.ndim != 2 or c.dtype.kind != "f":
            raise KMeansError(f"{path}: expected a (K, D) float array, got {c.dtype} of shape {c.shape}")
        if len(shard) and c.shape[1] != shard.features.shape[1]:
            raise KMeansError(f"{path}: centroids of dimension {c.shape[1]}, features of {shard.features.shape[1]}")
        labels = assign(shard.features, c) if len(shard) else np.zeros(0, np.int64)
        rows = [labels[shard.offsets[i] : shard.offsets[i + 1]] for i in range(len(shard))]
        write_label_file(rows, out / "labels" / f"k{k}_{rank}_{cfg.nshard}.km")


def _merge(manifest: Path, out: Path, feat_dir: Path, source: FeatureSource, cfg: TargetsConfig,
           utts: Sequence[Utterance], centroids_from) -> dict:
    ids: list[str] = []
    dim = 0
    for r in range(cfg.nshard):
        if shard_done(feat_dir, r, cfg.nshard) is None:
            raise LabelError(feat_dir, [f"feature shard {r} of {cfg.nshard} is not dumped"])
        ids += (feat_dir / f"feat_{r}_{cfg.nshard}.ids").read_text(encoding="utf-8").splitlines()
        dim = max(dim, int(shard_done(feat_dir, r, cfg.nshard)["dim"]))
    sets = {}
    fit_info = json.loads((out / "kmeans.json").read_text()) if (out / "kmeans.json").exists() else {}
    for k in cfg.ks:
        rows: list[list[int]] = []
        for r in range(cfg.nshard):
            part = out / "labels" / f"k{k}_{r}_{cfg.nshard}.km"
            if not part.exists():
                raise LabelError(part, [f"label shard {r} of {cfg.nshard} for K={k} is missing: run the label step"])
            if part.stat().st_size:
                rows += read_label_file(part)
        validate_labels(utts, rows, source.label_rate, ids=ids, num_classes=k, path=label_file(out, k))
        write_label_file(rows, label_file(out, k))
        counts = np.bincount(np.concatenate([np.asarray(r) for r in rows]), minlength=k)
        p = counts[counts > 0] / counts.sum()
        sets[str(k)] = {"labels": label_file(out, k).name, "centroids": centroids_file(out, k).name,
                        "clusters_used": int((counts > 0).sum()),
                        "label_entropy_bits": round(float(-(p * np.log2(p)).sum()), 4),
                        **fit_info.get("sets", {}).get(str(k), {})}
    frames = [len_ for r in range(cfg.nshard)
              for len_ in open_shard(feat_dir, r, cfg.nshard).lengths.tolist()]
    from jooci import __version__

    return {
        "format_version": FORMAT_VERSION,
        "jooci_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "manifest": {"path": str(manifest.resolve()), "sha256": _file_sha256(manifest) if manifest.exists() else None,
                     "fingerprint": manifest_fingerprint(utts), "utterances": len(utts)},
        "features": {**source.describe(), "dim": dim},
        "label_rate": source.label_rate,
        "frames": {"total": int(sum(frames)), "min_per_utterance": int(min(frames)),
                   "max_per_utterance": int(max(frames)), "counts_sha256": _hash_lines([str(f) for f in frames])},
        "kmeans": {k: v for k, v in fit_info.items() if k != "sets"},
        "label_sets": sets,
        "nshard": cfg.nshard,
    }


def load_targets(out_dir: str | os.PathLike, utts: Sequence[Utterance], ks: Sequence[int] | None = None,
                 ) -> dict[int, list[np.ndarray]]:
    """Labels of ``out_dir`` for ``utts``, checked before training: the provenance must be for this
    manifest (same ids, same order, same lengths) and every label row must have the CNN's count.

    Raises:
        LabelError: no provenance, another manifest, a missing K, or any row that does not fit.
    """
    out = Path(out_dir)
    prov_path = out / PROVENANCE
    if not prov_path.exists():
        raise LabelError(prov_path, ["no provenance file: these labels were not finished by `jooci targets`"])
    prov = json.loads(prov_path.read_text())
    if prov["manifest"]["fingerprint"] != manifest_fingerprint(utts):
        raise LabelError(prov_path, [f"labels were made for another manifest ({prov['manifest']['path']}, "
                                     f"{prov['manifest']['utterances']} utterances) or another utterance order"])
    available = sorted(int(k) for k in prov["label_sets"])
    ks = available if ks is None else list(ks)
    missing = [k for k in ks if k not in available]
    if missing:
        raise LabelError(prov_path, [f"no labels for K={missing}; available: {available}"])
    return {k: read_labels(label_file(out, k), utts, prov["label_rate"], num_classes=k) for k in ks}


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_json(path, obj, indent=1)


__all__ = ["FORMAT_VERSION", "PROVENANCE", "STEPS", "TargetsConfig", "load_targets", "make_targets",
           "manifest_fingerprint"]
