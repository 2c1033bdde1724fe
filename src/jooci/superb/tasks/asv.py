"""ASV: speaker verification. An x-vector-style head over the weighted sum (TDNN frame layers,
statistics pooling, a segment layer giving the embedding) trained with AM-softmax (s = 30,
m = 0.4, s3prl's ``sv_voxceleb1``) on the training speakers; trials scored by cosine similarity;
EER and minDCF at p_target 0.01 and 0.05. Dev selection on trials among held-out training
speakers (:mod:`jooci.superb.data`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jooci.data.corpora import Trial
from jooci.superb.data import TaskSplits
from jooci.superb.featurizer import Featurizer
from jooci.superb.metrics import EER_DEFINITION, P_TARGETS, bootstrap_interval, cluster_bootstrap_interval, eer, min_dcf
from jooci.superb.tasks.common import FeatureView, FrameBatch, FrameBatches, TaskSettings, padding_mask, plan_batches


MIN_SPEAKER_CLUSTERS = 10  # held-out speakers needed for the speaker bootstrap of the EER


class XVectorHead(nn.Module):
    """Featurizer -> TDNN (k 5/3/1, dilation 1/2/1, ReLU + BatchNorm) -> mean+std pooling ->
    Linear embedding; AM-softmax weights for training. (L, B, T, D) -> (B, E)."""

    def __init__(self, num_layers: int, dim: int, speakers: int, normalize: bool, hidden: int = 128,
                 emb: int = 128, scale: float = 30.0, margin: float = 0.4):
        super().__init__()
        self.featurizer = Featurizer(num_layers, normalize)
        self.tdnn = nn.ModuleList()
        for i, (k, d) in enumerate(((5, 1), (3, 2), (1, 1))):
            self.tdnn.append(nn.Sequential(nn.Conv1d(dim if i == 0 else hidden, hidden, k, dilation=d,
                                                     padding=d * (k // 2)), nn.ReLU(), nn.BatchNorm1d(hidden)))
        self.segment = nn.Linear(2 * hidden, emb)
        self.classes = nn.Parameter(torch.randn(speakers, emb) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.featurizer(x).transpose(1, 2)  # (B, D, T)
        keep = (~padding_mask(lengths, h.shape[2])).float()[:, None]  # (B, 1, T)
        for layer in self.tdnn:
            # zero the padding after each layer: an item then gives what it gives alone
            # (the conv's own zero padding), so eval-time batching does not change embeddings
            h = layer(h * keep) * keep
        n = keep.sum(2).clamp_min(1)
        mean = h.sum(2) / n
        std = ((((h - mean[..., None]) ** 2) * keep).sum(2) / n).clamp_min(1e-6).sqrt()
        return self.segment(torch.cat([mean, std], dim=1))

    def am_softmax_loss(self, emb: Tensor, labels: Tensor) -> Tensor:
        """Additive-margin softmax: cross-entropy over s * (cos - m * onehot)."""
        cos = F.normalize(emb, dim=-1) @ F.normalize(self.classes, dim=-1).T
        logits = self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]))
        return F.cross_entropy(logits, labels)


def score_trials(emb: dict[str, Tensor], trials: list[Trial]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and labels of ``trials`` given {utterance id: embedding}."""
    ids = {k: i for i, k in enumerate(emb)}
    e = F.normalize(torch.stack(list(emb.values())), dim=-1)
    a = torch.tensor([ids[t[1]] for t in trials])
    b = torch.tensor([ids[t[2]] for t in trials])
    scores = (e[a] * e[b]).sum(-1).numpy().astype(np.float64)
    return scores, np.array([t[0] for t in trials])


class ASVTask:
    name = "asv"
    metric = "eer"
    higher_is_better = False

    def __init__(self, view: FeatureView, splits: TaskSplits, settings: TaskSettings, num_layers: int, dim: int,
                 normalize: bool, crop_frames: int = 150):
        self.settings, self.num_layers, self.dim, self.normalize = settings, num_layers, dim, normalize
        self.crop = crop_frames
        self.speakers = sorted({u.speaker for u in splits.train})
        index = {s: i for i, s in enumerate(self.speakers)}
        self.labels = torch.tensor([index[u.speaker] for u in splits.train])
        self.view, self.train = view, list(splits.train)
        self.train_lengths = [view.num_frames(u) for u in self.train]
        self.ids = {"dev": [u.id for u in splits.dev], "test": [u.id for u in splits.test]}
        self.batches = {s: FrameBatches(view, getattr(splits, s), settings.batch_frames) for s in ("dev", "test")}
        self.trials = {"dev": splits.dev_trials or [], "test": splits.trials or []}
        self.speaker_of = {u.id: u.speaker for u in splits.test}
        # training batches: similar lengths together, so a common crop wastes little
        self.train_batches_rows = plan_batches(self.train_lengths, settings.batch_frames)

    def build_head(self) -> nn.Module:
        return XVectorHead(self.num_layers, self.dim, len(self.speakers), self.normalize)

    def train_batches(self, gen: torch.Generator) -> Iterator[FrameBatch]:
        for i in torch.randperm(len(self.train_batches_rows), generator=gen).tolist():
            rows = self.train_batches_rows[i]
            # one random crop length per batch: no padding in training (BatchNorm statistics stay clean)
            t = min(self.crop, min(self.train_lengths[r] for r in rows))
            xs = []
            for r in rows:  # only the crop is read from the cache
                start = int(torch.randint(0, self.train_lengths[r] - t + 1, (1,), generator=gen))
                xs.append(self.view.read(self.train[r], start, start + t).half())
            yield FrameBatch(torch.stack(xs, dim=1), torch.full((len(rows),), t), rows)

    def loss(self, head: nn.Module, batch: FrameBatch) -> Tensor:
        return head.am_softmax_loss(head(batch.x, batch.lengths), self.labels[batch.rows])

    def embeddings(self, head: nn.Module, split: str) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for batch in self.batches[split]:
            e = head(batch.x, batch.lengths)
            for b, r in enumerate(batch.rows):
                out[self.ids[split][r]] = e[b]
        return out

    def evaluate(self, head: nn.Module, split: str) -> tuple[float, dict[str, Any]]:
        scores, labels = score_trials(self.embeddings(head, split), self.trials[split])
        extra: dict[str, Any] = {}
        if split == "test":
            extra = {"min_dcf": {f"p_target={p:g}": min_dcf(scores, labels, p) for p in P_TARGETS},
                     "eer_definition": EER_DEFINITION, "scoring": "cosine", "trials": len(labels),
                     "train_speakers": len(self.speakers),
                     # [score, label] per trial, in trial-list order: the test-set bootstrap (metrics.item_statistic)
                     "items": [[float(s), int(y)] for s, y in zip(scores.tolist(), labels.tolist())]}
            extra["ci95"] = list(bootstrap_interval(self.metric, extra["items"]))
            # trials of one speaker are not independent: resampling speakers (a trial belongs to
            # the speakers of its two utterances) gives the wider interval; a percentile bootstrap
            # over fewer than MIN_SPEAKER_CLUSTERS speakers is too coarse to report
            pairs = [(self.speaker_of.get(t[1], t[1]), self.speaker_of.get(t[2], t[2])) for t in self.trials["test"]]
            extra["test_speakers"] = len({s for p in pairs for s in p})
            if extra["test_speakers"] >= MIN_SPEAKER_CLUSTERS:
                extra["ci95_speakers"] = list(cluster_bootstrap_interval(self.metric, extra["items"], pairs))
        return eer(scores, labels), extra
