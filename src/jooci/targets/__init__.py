"""Targets for the Content encoder: features in shards, k-means for several K, label files checked
against their manifest, and label quality (purity, PNMI). ``jooci targets`` runs it all.

Names are imported lazily (PEP 562), so importing the package loads neither torch, numpy nor faiss.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "dump_shard": "dump", "open_shard": "dump", "shard_range": "dump",
    "KMeansError": "kmeans", "assign": "kmeans", "fit_kmeans": "kmeans", "sample_features": "kmeans",
    "LabelError": "labels", "expected_frames": "labels", "label_file": "labels", "read_labels": "labels",
    "validate_labels": "labels",
    "TargetsConfig": "pipeline", "load_targets": "pipeline", "make_targets": "pipeline",
    "manifest_fingerprint": "pipeline",
    "LabelQuality": "quality", "quality_of_label_folder": "quality", "label_quality": "quality", "quality_table": "quality", "random_labels": "quality",
    "FeatureSource": "sources", "FeatureSourceError": "sources", "mfcc_source": "sources", "model_source": "sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jooci.targets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"jooci.targets.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
