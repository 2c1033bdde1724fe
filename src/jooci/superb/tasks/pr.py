"""PR: phoneme recognition. Frame-level linear head over the weighted sum, CTC over ARPAbet-39
(blank = 0), greedy decoding, PER (s3prl ``ctc/libriphone.yaml``: a linear head, LR 1e-2)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jooci.data.manifest import Utterance
from jooci.data.synth import ARPABET_39
from jooci.superb.data import TaskDataError, TaskSplits
from jooci.superb.featurizer import Featurizer
from jooci.superb.metrics import bootstrap_interval, error_items, error_rate
from jooci.superb.tasks.common import FeatureView, FrameBatch, FrameBatches, TaskSettings, greedy_ctc, shuffled


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each (B, T, F) item within its own length; padding stays at the end."""
    t = torch.arange(x.shape[1])[None]
    idx = lengths[:, None] - 1 - t
    idx = torch.where(idx >= 0, idx, t.expand_as(idx))
    return x.gather(1, idx[..., None].expand_as(x))


class BiLSTM(nn.Module):
    """A bidirectional LSTM on padded batches, exact per item: the backward direction runs on
    each item reversed within its length. (PyTorch's packed sequences give the same result but
    their CPU backward was 3x slower than this on ragged batches.)"""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fwd = nn.LSTM(dim, hidden, batch_first=True)
        self.bwd = nn.LSTM(dim, hidden, batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        f, _ = self.fwd(x)  # padding comes after the valid frames: it cannot reach them
        b, _ = self.bwd(reverse_padded(x, lengths))
        return torch.cat([f, reverse_padded(b, lengths)], dim=-1)


class CTCHead(nn.Module):
    """Featurizer -> [LayerNorm -> Linear -> BiLSTM] -> Linear to V + 1 classes (blank first).
    (L, B, T, D) -> (B, T, V+1) log-probabilities. PR uses the bare linear head."""

    def __init__(self, num_layers: int, dim: int, vocab: int, normalize: bool,
                 lstm_hidden: int = 0, proj: int = 0):
        super().__init__()
        self.featurizer = Featurizer(num_layers, normalize)
        # the recurrent head normalises its input: raw log-mel (-15..5) would saturate the LSTM gates
        self.norm = nn.LayerNorm(dim) if lstm_hidden else None
        self.proj = nn.Linear(dim, proj) if proj else None
        width = proj or dim
        self.lstm = BiLSTM(width, lstm_hidden) if lstm_hidden else None
        self.out = nn.Linear(2 * lstm_hidden if lstm_hidden else width, vocab + 1)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.featurizer(x)
        if self.norm is not None:
            h = self.norm(h)
        if self.proj is not None:
            h = self.proj(h)
        if self.lstm is not None:
            h = self.lstm(h, lengths)
        return self.out(h).log_softmax(-1)


class CTCTask:
    """Shared by PR and ASR: token targets per utterance, CTC loss, greedy decoding, error rate."""

    name = "ctc"
    metric = "per"
    higher_is_better = False

    def __init__(self, view: FeatureView, splits: TaskSplits, vocab: Sequence[str], targets: dict[str, list[list[str]]],
                 settings: TaskSettings, num_layers: int, dim: int, normalize: bool):
        self.vocab = list(vocab)
        self.index = {t: i + 1 for i, t in enumerate(self.vocab)}  # 0 = blank
        self.settings, self.num_layers, self.dim, self.normalize = settings, num_layers, dim, normalize
        self.refs: dict[str, list[list[str]]] = {}
        self.batches: dict[str, FrameBatches] = {}
        self.targets: dict[str, list[Tensor]] = {}
        for split in ("train", "dev", "test"):
            utts: list[Utterance] = getattr(splits, split)
            self.refs[split] = targets[split]
            self.targets[split] = [torch.tensor([self.index[t] for t in self.tokens(seq)], dtype=torch.long)
                                   for seq in targets[split]]
            self.batches[split] = FrameBatches(view, utts, settings.batch_frames)  # read as used

    def tokens(self, seq: list[str]) -> list[str]:
        """The CTC target tokens of a reference (phones as they are; ASR spells words out)."""
        return seq

    def detokenize(self, ids: list[int]) -> list[str]:
        return [self.vocab[i - 1] for i in ids]

    def build_head(self) -> nn.Module:
        return CTCHead(self.num_layers, self.dim, len(self.vocab), self.normalize)

    def train_batches(self, gen: torch.Generator) -> Iterator[FrameBatch]:
        return shuffled(self.batches["train"], gen)

    def loss(self, head: nn.Module, batch: FrameBatch, split: str = "train") -> Tensor:
        lp = head(batch.x, batch.lengths)
        tg = [self.targets[split][i] for i in batch.rows]
        return F.ctc_loss(lp.transpose(0, 1), torch.cat(tg), batch.lengths, torch.tensor([len(t) for t in tg]),
                          blank=0, zero_infinity=True)

    def evaluate(self, head: nn.Module, split: str) -> tuple[float, dict[str, Any]]:
        hyps: list[list[str]] = [[] for _ in self.refs[split]]
        for batch in self.batches[split]:
            for i, ids in zip(batch.rows, greedy_ctc(head(batch.x, batch.lengths), batch.lengths)):
                hyps[i] = self.detokenize(ids)
        refs = self.refs[split]
        hyp_words = [self.units(h) for h in hyps]
        value = error_rate(refs, hyp_words)
        extra: dict[str, Any] = {"examples": [{"ref": " ".join(r), "hyp": " ".join(h)}
                                              for r, h in zip(refs[:3], hyp_words[:3])]}
        if split == "test":
            # per-utterance [edits, reference tokens]: the test-set bootstrap (metrics.item_statistic)
            extra["items"] = error_items(refs, hyp_words)
            extra["ci95"] = list(bootstrap_interval(self.metric, extra["items"]))
            if self.metric == "wer":
                # characters show progress long before words come out right
                extra["cer"] = error_rate([list("|".join(r)) for r in refs], [list("|".join(h)) for h in hyp_words])
        return value, extra

    def units(self, tokens: list[str]) -> list[str]:
        """Decoded tokens -> the units the error rate counts (phones for PR, words for ASR)."""
        return tokens


class PRTask(CTCTask):
    name = "pr"
    metric = "per"

    def __init__(self, view: FeatureView, splits: TaskSplits, settings: TaskSettings, num_layers: int, dim: int,
                 normalize: bool):
        known = set(ARPABET_39)
        targets = {}
        for split in ("train", "dev", "test"):
            utts = getattr(splits, split)
            bad = sorted({p for u in utts for p in (u.phones or []) if p not in known})
            if bad:
                raise TaskDataError(f"{splits.sources.get(split, split)}: pr expects ARPAbet-39 phones without stress; "
                                    f"unknown symbols {', '.join(bad[:10])}")
            targets[split] = [list(u.phones or []) for u in utts]
        super().__init__(view, splits, ARPABET_39, targets, settings, num_layers, dim, normalize)
