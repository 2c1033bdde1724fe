"""SID: speaker identification, closed set. Mean pooling + linear over the weighted sum, accuracy.

s3prl's head is a 256-d projector, mean pooling, then a linear classifier: all three are linear,
and mean pooling commutes with the weighted sum, so the head here trains on per-layer utterance
means ``(N, L, D)`` computed once: the same model class, seconds instead of hours on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jooci.superb.data import TaskSplits
from jooci.superb.featurizer import Featurizer
from jooci.superb.metrics import accuracy, bootstrap_interval
from jooci.superb.tasks.common import FeatureView, TaskSettings


class PooledLinear(nn.Module):
    """Featurizer over pooled states (L, B, D) -> projector -> linear classes (B, K)."""

    def __init__(self, num_layers: int, dim: int, classes: int, normalize: bool, proj: int = 256):
        super().__init__()
        self.featurizer = Featurizer(num_layers, normalize)
        self.proj = nn.Linear(dim, proj)
        self.out = nn.Linear(proj, classes)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.out(self.proj(self.featurizer(pooled)))


class PooledClassifierTask:
    """Utterance classification on pooled features: labels from one Utterance field."""

    name = "classify"
    metric = "accuracy"
    higher_is_better = True
    label_field = "speaker"

    def __init__(self, view: FeatureView, splits: TaskSplits, settings: TaskSettings, num_layers: int, dim: int,
                 normalize: bool):
        self.settings, self.num_layers, self.dim, self.normalize = settings, num_layers, dim, normalize
        self.classes = sorted({getattr(u, self.label_field) for u in splits.train})
        index = {c: i for i, c in enumerate(self.classes)}
        self.x: dict[str, Tensor] = {}
        self.y: dict[str, Tensor] = {}
        for split in ("train", "dev", "test"):
            utts = getattr(splits, split)
            # a label never seen in training counts as an error (-1 never equals a prediction)
            self.y[split] = torch.tensor([index.get(getattr(u, self.label_field), -1) for u in utts])
            self.x[split] = view.pooled(utts).transpose(0, 1).contiguous()  # (L, N, D)

    def build_head(self) -> nn.Module:
        return PooledLinear(self.num_layers, self.dim, len(self.classes), self.normalize)

    def train_batches(self, gen: torch.Generator) -> Iterator[Tensor]:
        n = self.y["train"].shape[0]
        size = max(1, self.settings.batch_frames // 100)  # utterances per batch (~100 frames each)
        perm = torch.randperm(n, generator=gen)
        return iter([perm[i:i + size] for i in range(0, n, size)])

    def loss(self, head: nn.Module, rows: Tensor) -> Tensor:
        return F.cross_entropy(head(self.x["train"][:, rows]), self.y["train"][rows])

    def evaluate(self, head: nn.Module, split: str) -> tuple[float, dict[str, Any]]:
        pred = head(self.x[split]).argmax(-1)
        labels, pred = self.y[split].numpy(), pred.numpy()
        extra: dict[str, Any] = {"classes": len(self.classes)}
        if split == "test":
            # 1 / 0 per test utterance, in test order: the test-set bootstrap (metrics.item_statistic)
            extra["items"] = (labels == pred).astype(int).tolist()
            extra["ci95"] = list(bootstrap_interval(self.metric, extra["items"]))
        return accuracy(labels, pred), extra


class SIDTask(PooledClassifierTask):
    name = "sid"
    label_field = "speaker"
