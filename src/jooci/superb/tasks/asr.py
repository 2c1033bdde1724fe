"""ASR: character CTC with a small BiLSTM over the weighted sum, greedy decoding (no LM), WER via
jiwer. s3prl uses 2 x BLSTM 1024 for 200k steps; here one BiLSTM layer behind a projection, sized
(``proj``, ``hidden``) for seconds-long CPU runs."""

from __future__ import annotations

import re

from torch import nn

from jooci.superb.data import TaskSplits
from jooci.superb.tasks.common import FeatureView, TaskSettings
from jooci.superb.tasks.pr import CTCHead, CTCTask

SPACE = "|"
_KEEP = re.compile(r"[^a-z' ]+")


def normalise_text(text: str) -> list[str]:
    """Lower case, letters and apostrophes only (jooci transcripts are lower case already), as words."""
    return _KEEP.sub(" ", text.lower()).split()


class ASRTask(CTCTask):
    name = "asr"
    metric = "wer"

    def __init__(self, view: FeatureView, splits: TaskSplits, settings: TaskSettings, num_layers: int, dim: int,
                 normalize: bool, proj: int = 64, hidden: int = 64):
        self.proj, self.hidden = (settings.width, settings.width) if settings.width else (proj, hidden)
        targets = {s: [normalise_text(u.text or "") for u in getattr(splits, s)] for s in ("train", "dev", "test")}
        vocab = sorted({c for words in targets["train"] for w in words for c in w}) + [SPACE]
        # characters never seen in training cannot be emitted: they are left out of the CTC targets
        # (dev/test targets are not trained on anyway); the WER still counts the words as written
        self._known = set(vocab)
        super().__init__(view, splits, vocab, targets, settings, num_layers, dim, normalize)

    def tokens(self, seq: list[str]) -> list[str]:
        return [c for c in SPACE.join(seq) if c in self._known]

    def units(self, tokens: list[str]) -> list[str]:
        return "".join(tokens).replace(SPACE, " ").split()

    def build_head(self) -> nn.Module:
        return CTCHead(self.num_layers, self.dim, len(self.vocab), self.normalize, lstm_hidden=self.hidden,
                       proj=self.proj)
