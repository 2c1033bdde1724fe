"""Scores of the SUPERB-style tasks: PER/WER (jiwer), accuracy, EER and minDCF, relative improvement.

Units: PER, WER, accuracy and EER are percentages (SUPERB's tables); minDCF is the normalised
detection cost (no unit).

EER definition (the one s3prl's ``sv_voxceleb1`` computes with ``roc_curve`` + ``brentq``): the ROC
is the polyline through the (FPR, FNR) points of every distinct score threshold, from "accept
all" (1, 0) to "reject all" (0, 1); the EER is where that polyline crosses FNR = FPR, by linear
interpolation along the segment that crosses it. Ties between scores form one threshold (they can
only be accepted or rejected together). Computed over sorted scores in O(n log n) time and O(n)
memory, so millions of trials are fine (SpeechBrain's threshold matrix is O(n^2), #1387).

minDCF: ``min over thresholds of (C_miss * P_miss * p_target + C_fa * P_fa * (1 - p_target))``
divided by ``min(C_miss * p_target, C_fa * (1 - p_target))`` (NIST SRE / Kaldi normalisation),
C_miss = C_fa = 1, over the same thresholds plus accept-all and reject-all. Always reported with
its ``p_target`` (Kaldi/SpeechBrain default 0.01, 3D-Speaker 0.05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jiwer
import numpy as np

EER_DEFINITION = ("FNR = FPR on the ROC polyline through every distinct-score threshold, by linear "
                  "interpolation (s3prl's roc_curve + brentq definition)")
P_TARGETS = (0.01, 0.05)

# metric name -> (higher is better, unit); accuracy-type metrics turn into error = 100 - value
METRICS: dict[str, tuple[bool, str]] = {
    "per": (False, "%"), "wer": (False, "%"), "accuracy": (True, "%"), "eer": (False, "%"),
}


def error_rate(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """Token error rate in % (PER for phone sequences, WER for word sequences), pooled over the
    corpus (total edits / total reference tokens), as jiwer and SUPERB compute it.

    Args:
        references, hypotheses: one token list per utterance; a hypothesis may be empty.

    Raises:
        ValueError: lengths differ, or the references hold no token at all.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(" ".join(r), " ".join(h)) for r, h in zip(references, hypotheses) if len(r)]
    if not pairs:
        raise ValueError("no reference tokens to score against")
    # jiwer pools the edit counts over all pairs (not a mean of per-utterance rates).
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    n_ref = sum(len(r) for r in references)
    edits = out.substitutions + out.deletions + out.insertions
    return 100.0 * edits / n_ref


def accuracy(labels: np.ndarray | Sequence[int], predictions: np.ndarray | Sequence[int]) -> float:
    """Share of correct predictions, in %."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.size == 0:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must match and be non-empty")
    return 100.0 * float(np.mean(labels == predictions))


def _roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, FNR, threshold) at each distinct score, thresholds descending, with the
    reject-all point (0, 1, +inf) first. O(n log n)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    pos = labels == 1
    if not np.all((labels == 0) | pos):
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need target and non-target trials, got {n_pos} target and {n_neg} non-target")
    order = np.argsort(-scores, kind="mergesort")
    s, p = scores[order], pos[order]
    tp = np.cumsum(p)
    fp = np.cumsum(~p)
    # accepting everything scoring >= s[i]: keep the last index of each run of equal scores
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    fpr = np.r_[0.0, fp[last] / n_neg]
    fnr = np.r_[1.0, 1.0 - tp[last] / n_pos]
    thr = np.r_[np.inf, s[last]]
    return fpr, fnr, thr


def eer(scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[int]) -> float:
    """Equal error rate in % (see the module docstring for the definition).

    Args:
        scores: (n,) higher = more likely the same speaker.
        labels: (n,) 1 = target (same speaker), 0 = non-target.
    """
    fpr, fnr, _ = _roc(np.asarray(scores), np.asarray(labels))
    d = fnr - fpr  # +1 at reject-all, -1 at accept-all, non-increasing in between
    i = int(np.argmax(d <= 0))  # first point at or past the crossing
    if d[i] == 0:
        return 100.0 * float(fpr[i])
    # the crossing lies on the segment (i-1, i): d goes from > 0 to < 0
    t = d[i - 1] / (d[i - 1] - d[i])
    return 100.0 * float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def min_dcf(scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[int], p_target: float,
            c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost at prior ``p_target`` (see the module docstring)."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    fpr, fnr, _ = _roc(np.asarray(scores), np.asarray(labels))
    fpr, fnr = np.r_[fpr, 1.0], np.r_[fnr, 0.0]  # accept-all (the last point already is, harmless)
    dcf = c_miss * fnr * p_target + c_fa * fpr * (1.0 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def task_error(metric: str, value: float) -> float:
    """The value as an error in % (accuracy -> 100 - accuracy), for relative improvements."""
    higher, _ = METRICS[metric]
    return 100.0 - value if higher else value


def relative_improvement(metric: str, value: float, reference: float) -> float | None:
    """Relative error reduction in % of ``value`` over ``reference`` (DESIGN §2 row 14):
    ``(e_ref - e) / e_ref``; None when the reference has no error to reduce."""
    e, e_ref = task_error(metric, value), task_error(metric, reference)
    if e_ref <= 0:
        return None
    return 100.0 * (e_ref - e) / e_ref


def mean_relative_improvement(results: Mapping[str, tuple[str, float]],
                              reference: Mapping[str, tuple[str, float]]) -> tuple[float | None, list[str]]:
    """Mean of :func:`relative_improvement` over the tasks both hold ({task: (metric, value)});
    returns (mean or None, tasks used). Tasks whose reference error is 0 are left out."""
    used, vals = [], []
    for task, (metric, value) in results.items():
        if task in reference:
            r = relative_improvement(metric, value, reference[task][1])
            if r is not None:
                used.append(task)
                vals.append(r)
    return (float(np.mean(vals)) if vals else None), used
