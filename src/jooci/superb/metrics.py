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

Test-set uncertainty: :func:`item_statistic` recomputes a metric from per-item test records
(``extra["items"]`` of a task), :func:`bootstrap_interval` resamples those items, and
:func:`paired_bootstrap` resamples the same items for two models (the interval of their
difference). Head-training randomness is not resampled: the intervals are lower bounds. Over
several pretraining seeds, :func:`seed_interval` is the Student-t interval of the per-seed
differences and :func:`stratified_paired_bootstrap` the test-sampling interval of their mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

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
    return 100.0 * float(_crossing(fpr[None], fnr[None])[0])


def _crossing(fpr: np.ndarray, fnr: np.ndarray) -> np.ndarray:
    """(k, P) ROC polylines (reject-all point first) -> (k,) rate where FNR = FPR, by linear
    interpolation on the segment that crosses (the one EER definition, for :func:`eer` and
    :func:`eer_from_counts`)."""
    d = fnr - fpr  # +1 at reject-all, -1 at accept-all, non-increasing in between
    i = np.argmax(d <= 0, axis=1)  # first point at or past the crossing (>= 1: d[:, 0] = 1)
    rows = np.arange(d.shape[0])
    d1, d0 = d[rows, i], d[rows, i - 1]
    f1, f0 = fpr[rows, i], fpr[rows, i - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d1 == 0, f1, f0 + d0 / (d0 - d1) * (f1 - f0))


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
    """Relative error reduction in % of ``value`` over ``reference`` (docs/evaluation.md):
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


# --- test-set uncertainty ------------------------------------------------------------------------
#
# Every task stores per-item test records (``extra["items"]``) from which its metric can be
# recomputed; resampling those items with replacement gives a percentile bootstrap interval, and
# resampling the same indices for two models gives a paired interval of their difference. Only the
# test-set sampling is resampled: the randomness of head training (seed, LR sweep) is not, so the
# intervals are a lower bound on the real uncertainty.

# index entries per resampling chunk: bounds the memory of a bootstrap (~10 float64 arrays this size)
_CHUNK_ELEMENTS = 500_000
# a bootstrap gives up after this many draws per wanted resample (EER resamples with one class only)
_MAX_DRAWS_PER_RESAMPLE = 20


def error_items(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> list[list[int]]:
    """Per-utterance ``[edits, reference tokens]`` of :func:`error_rate`'s computation, in order.

    Edits are the substitutions + deletions + insertions of jiwer's alignment of that utterance.
    As in :func:`error_rate`, an utterance with an empty reference is left out of the alignment
    (its hypothesis costs nothing) and contributes ``[0, 0]``; so
    ``item_statistic("per", error_items(r, h)) == error_rate(r, h)`` exactly.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    items = [[0, len(r)] for r in references]
    keep = [i for i, r in enumerate(references) if len(r)]
    if not keep:
        raise ValueError("no reference tokens to score against")
    out = jiwer.process_words([" ".join(references[i]) for i in keep], [" ".join(hypotheses[i]) for i in keep])
    total = 0
    for i, chunks in zip(keep, out.alignments):
        edits = 0
        for c in chunks:
            if c.type == "insert":
                edits += c.hyp_end_idx - c.hyp_start_idx
            elif c.type != "equal":  # substitute / delete: counted on the reference side, as jiwer does
                edits += c.ref_end_idx - c.ref_start_idx
        items[i][0] = edits
        total += edits
    if total != out.substitutions + out.deletions + out.insertions:  # jiwer changed how it counts
        raise RuntimeError(f"per-utterance edits sum to {total}, jiwer's pooled count is "
                           f"{out.substitutions + out.deletions + out.insertions}")
    return items


class _Items:
    """Items of one metric as arrays, checked once."""

    def __init__(self, metric: str, items: Any):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        self.metric = metric
        if metric in ("per", "wer"):
            a = np.asarray(items, dtype=np.float64)
            if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] == 0:
                raise ValueError(f"{metric} items must be a non-empty list of [edits, reference_tokens], "
                                 f"got shape {a.shape}")
            if np.any(a < 0) or np.any(a != np.round(a)):
                raise ValueError(f"{metric} items must be non-negative integer counts")
            self.edits, self.refs = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
            if self.refs.sum() == 0:
                raise ValueError("no reference tokens to score against")
        elif metric == "accuracy":
            a = np.asarray(items, dtype=np.float64)
            if a.ndim != 1 or a.size == 0 or not np.all((a == 0) | (a == 1)):
                raise ValueError(f"accuracy items must be a non-empty list of 0/1, got shape {a.shape}")
            self.correct = a
        else:  # eer
            a = np.asarray(items, dtype=np.float64)
            if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] == 0:
                raise ValueError(f"eer items must be a non-empty list of [score, label], got shape {a.shape}")
            self.scores, self.labels = a[:, 0], a[:, 1]
            self.value = eer(self.scores, self.labels)  # checks finiteness, 0/1 labels, both classes
            # trial -> its distinct-score group, groups in descending score order (the ROC's thresholds)
            order = np.argsort(-self.scores, kind="mergesort")
            s = self.scores[order]
            group_sorted = np.r_[0, np.cumsum(s[1:] != s[:-1])]
            self.group = np.empty(s.size, dtype=np.int64)
            self.group[order] = group_sorted
            self.n_groups = int(group_sorted[-1]) + 1
            self.pos = (self.labels == 1).astype(np.float64)
        self.n = a.shape[0]

    def statistic(self) -> float:
        if self.metric in ("per", "wer"):
            return 100.0 * int(self.edits.sum()) / int(self.refs.sum())  # the arithmetic of error_rate
        if self.metric == "accuracy":
            return 100.0 * float(np.mean(self.correct))  # the arithmetic of accuracy
        return self.value

    def resampled(self, idx: np.ndarray) -> np.ndarray:
        """The statistic of each row of ``idx`` (k, n) of item indices; NaN where undefined
        (no reference token; an EER resample with one class only)."""
        if self.metric in ("per", "wer"):
            refs = self.refs[idx].sum(axis=1).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = 100.0 * self.edits[idx].sum(axis=1) / refs
            return np.where(refs > 0, out, np.nan)
        if self.metric == "accuracy":
            return 100.0 * self.correct[idx].mean(axis=1)
        k = idx.shape[0]
        flat = (self.group[idx] + self.n_groups * np.arange(k)[:, None]).ravel()
        size = k * self.n_groups
        total = np.bincount(flat, minlength=size).reshape(k, self.n_groups).astype(np.float64)
        pos = np.bincount(flat, weights=self.pos[idx].ravel(), minlength=size).reshape(k, self.n_groups)
        return eer_from_counts(pos, total - pos)


def eer_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """:func:`eer` of many weighted trial sets at once, in %.

    Args:
        pos, neg: (k, G) how many target / non-target trials of each row sit at each distinct
            score, the G scores in descending order (a zero column adds a repeated ROC point,
            which moves no crossing).

    Returns:
        (k,) EER per row; NaN for a row without target or without non-target trials.
    """
    pos, neg = np.atleast_2d(np.asarray(pos, dtype=np.float64)), np.atleast_2d(np.asarray(neg, dtype=np.float64))
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    k = pos.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        fpr = np.concatenate([np.zeros((k, 1)), fp / n_neg], axis=1)
        fnr = np.concatenate([np.ones((k, 1)), 1.0 - tp / n_pos], axis=1)
        out = _crossing(fpr, fnr)
    valid = (n_pos[:, 0] > 0) & (n_neg[:, 0] > 0)
    return np.where(valid, 100.0 * out, np.nan)


def item_statistic(metric: str, items: Any) -> float:
    """The task metric recomputed from its per-item test records (``extra["items"]``).

    Formats: ``per``/``wer``: ``[[edits, reference_tokens], ...]`` per utterance, pooled
    ``100 * sum(edits) / sum(reference_tokens)`` (:func:`error_rate`); ``accuracy``: ``[0 or 1,
    ...]`` per utterance, ``100 * mean``; ``eer``: ``[[score, label], ...]`` per trial, :func:`eer`.
    """
    return _Items(metric, items).statistic()


def _bootstrap(sets: Sequence[_Items], resamples: int, seed: int) -> np.ndarray:
    """(resamples, len(sets)) statistics, every set resampled with the same item indices; draws
    whose statistic is undefined for any set are redrawn (deterministic for a seed)."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n = sets[0].n
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _CHUNK_ELEMENTS // n))
    kept: list[np.ndarray] = []
    have = drawn = 0
    while have < resamples:
        if drawn >= _MAX_DRAWS_PER_RESAMPLE * resamples:
            raise ValueError(f"only {have} of {drawn} bootstrap resamples had a defined {sets[0].metric}; "
                             "too few items of one kind to bootstrap")
        k = min(chunk, resamples - have)
        idx = rng.integers(0, n, size=(k, n))
        drawn += k
        stats = np.stack([s.resampled(idx) for s in sets], axis=1)
        stats = stats[np.all(np.isfinite(stats), axis=1)]
        kept.append(stats)
        have += stats.shape[0]
    return np.concatenate(kept)[:resamples]


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    low, high = np.percentile(values, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(low), float(high)


def bootstrap_interval(metric: str, items: Any, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`item_statistic`: the items resampled with
    replacement ``resamples`` times (numpy Generator seeded with ``seed``). For EER, a resample
    with only one class is redrawn. Test-set sampling only: head-training randomness is not in it."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return _percentiles(_bootstrap([_Items(metric, items)], resamples, seed)[:, 0], level)


def cluster_bootstrap_interval(metric: str, items: Any, clusters: Sequence[Any], resamples: int = 1000,
                               level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap over clusters of items (Bolle et al.'s *subsets bootstrap*): each
    resample draws as many clusters as there are, with replacement, and keeps every item of the
    drawn clusters as many times as they were drawn.

    An item may belong to two clusters (``clusters[i]`` a pair, as an ASV trial belongs to the
    speakers of its two utterances): it is then kept with the product of the two draw counts (the
    *two-way* bootstrap), once per draw when both are the same cluster (a target trial). Trials of
    one speaker share that speaker's difficulty, so resampling trials alone gives too narrow an
    interval. A draw whose statistic is undefined (one class only) is redrawn.

    Raises:
        ValueError: ``clusters`` not one per item, fewer than 2 clusters, or too many undefined draws.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    its = _Items(metric, items)
    if len(clusters) != its.n:
        raise ValueError(f"{len(clusters)} cluster labels for {its.n} items")
    pairs = [tuple(c) if isinstance(c, (tuple, list)) else (c, c) for c in clusters]
    if any(len(p) != 2 for p in pairs):
        raise ValueError("a cluster label is one label or a pair of labels")
    names, ids = np.unique(np.asarray([[str(a), str(b)] for a, b in pairs]).reshape(-1), return_inverse=True)
    ids = ids.reshape(-1, 2)
    two = ids[:, 0] != ids[:, 1]
    if len(names) < 2:
        raise ValueError(f"a cluster bootstrap needs at least 2 clusters, got {len(names)}")
    rng = np.random.default_rng(seed)
    rows = np.arange(its.n)
    values: list[float] = []
    drawn = 0
    while len(values) < resamples:
        if drawn >= _MAX_DRAWS_PER_RESAMPLE * resamples:
            raise ValueError(f"only {len(values)} of {drawn} cluster resamples had a defined {metric}")
        counts = np.bincount(rng.integers(0, len(names), size=len(names)), minlength=len(names))
        weight = counts[ids[:, 0]] * np.where(two, counts[ids[:, 1]], 1)
        drawn += 1
        idx = np.repeat(rows, weight)
        value = float(its.resampled(idx[None])[0]) if idx.size else float("nan")
        if np.isfinite(value):
            values.append(value)
    return _percentiles(np.asarray(values), level)


def paired_bootstrap(metric: str, items_a: Any, items_b: Any, resamples: int = 1000, level: float = 0.95,
                     seed: int = 0) -> dict[str, float | int]:
    """Paired bootstrap of ``statistic(a) - statistic(b)`` for two models scored on the same test
    items: each resample applies the same item indices to both, so what both get right or wrong
    alike cancels.

    Returns:
        {"difference": on the full set, "low", "high": the percentile interval of the difference,
        "resamples", "level"}.

    Raises:
        ValueError: the item lists differ in length, or are not the same test set (EER: the
            trial labels differ; PER/WER: the reference token counts differ).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    a, b = _paired_items(metric, items_a, items_b)
    stats = _bootstrap([a, b], resamples, seed)
    low, high = _percentiles(stats[:, 0] - stats[:, 1], level)
    return {"difference": a.statistic() - b.statistic(), "low": low, "high": high, "resamples": int(resamples),
            "level": level}


def _paired_items(metric: str, items_a: Any, items_b: Any) -> tuple[_Items, _Items]:
    """Both item lists, checked to be the same test set."""
    a, b = _Items(metric, items_a), _Items(metric, items_b)
    if a.n != b.n:
        raise ValueError(f"the item lists differ in length ({a.n} vs {b.n}): not the same test set")
    if metric == "eer" and not np.array_equal(a.labels, b.labels):
        raise ValueError("the trial labels differ: paired EERs need the same trial list, in the same order")
    if metric in ("per", "wer") and not np.array_equal(a.refs, b.refs):
        raise ValueError("the reference token counts differ: paired error rates need the same test utterances, "
                         "in the same order")
    return a, b


# Several pretraining seeds give several (A, B) pairs, each on its own test set. Two intervals of
# the mean difference over the seeds answer two questions:
# - stratified_paired_bootstrap: is the mean over *these* seeds beyond test-set noise? Each seed's
#   items are resampled within that seed; pretraining randomness is held fixed.
# - seed_interval: would the difference survive new pretraining draws? A Student-t interval over
#   the per-seed differences, whose spread holds both the pretraining and the test-set randomness.


def stratified_paired_bootstrap(metric: str, pairs: Sequence[tuple[Any, Any]], resamples: int = 1000,
                                level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Paired bootstrap of the mean over strata (seeds) of ``statistic(a) - statistic(b)``.

    Each pair ``(items_a, items_b)`` is one stratum's test set, resampled within itself with its
    own generator (``seed + k`` for the k-th pair), as :func:`paired_bootstrap` does; the r-th
    resample of the mean is the mean of the strata's r-th resampled differences.

    Returns:
        {"difference": mean of the full-set differences, "low", "high", "strata", "resamples", "level"}.
    """
    if not pairs:
        raise ValueError("no pairs to bootstrap")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    draws, full = [], []
    for k, (items_a, items_b) in enumerate(pairs):
        a, b = _paired_items(metric, items_a, items_b)
        stats = _bootstrap([a, b], resamples, seed + k)
        draws.append(stats[:, 0] - stats[:, 1])
        full.append(a.statistic() - b.statistic())
    low, high = _percentiles(np.mean(draws, axis=0), level)
    return {"difference": float(np.mean(full)), "low": low, "high": high, "strata": len(pairs),
            "resamples": int(resamples), "level": level}


def seed_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (one difference per seed): mean ± t(n-1) · sd/√n.

    Needs two values at least; with few seeds it is wide (t = 12.7 for two, 3.18 for four at 95 %).
    """
    from scipy.stats import t as student_t

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"need at least two finite values for an interval over seeds, got {list(values)}")
    half = float(student_t.ppf(0.5 * (1.0 + level), x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return float(x.mean()) - half, float(x.mean()) + half
