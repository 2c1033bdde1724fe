
import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from jooci.superb.metrics import (accuracy, eer, error_rate, mean_relative_improvement, min_dcf,
                                  relative_improvement, task_error)


def test_error_rate_by_hand():
    # "a b c" vs "a x c d": one substitution, one insertion over 3 reference tokens
    assert error_rate([["a", "b", "c"]], [["a", "x", "c", "d"]]) == pytest.approx(200 / 3)
    # pooled over the corpus: (1 deletion + 0) / (2 + 3) tokens, not the mean of per-utterance rates
    assert error_rate([["AA", "B"], ["K", "AE", "T"]], [["AA"], ["K", "AE", "T"]]) == pytest.approx(20.0)
    assert error_rate([["x", "y"]], [[]]) == 100.0  # an empty hypothesis deletes everything
    with pytest.raises(ValueError, match="references"):
        error_rate([["a"]], [])
    with pytest.raises(ValueError, match="no reference"):
        error_rate([[]], [["a"]])


def test_accuracy_by_hand():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 75.0
    with pytest.raises(ValueError):
        accuracy([], [])


def test_eer_at_a_roc_point():
    # desc: .9+ .8+ .7- .6+ .5- .4-; accepting >= .7 misses 1/3 targets and admits 1/3 non-targets
    assert eer([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0]) == pytest.approx(100 / 3)


def test_eer_interpolates_along_a_segment():
    # ROC points (FPR, FNR): (0,1) (0,.5) (1/3,.5) (2/3,.5) (1,.5) (1,0); FNR = FPR at (.5, .5)
    assert eer([0.8, 0.7, 0.6, 0.5, 0.3], [1, 0, 0, 0, 1]) == pytest.approx(50.0)


def test_eer_tied_scores_form_one_threshold():
    # .5 is a target and a non-target: (0,.5) -> (.5,0) is one diagonal step; crossing at .25
    assert eer([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(25.0)
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0  # separable
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 100.0  # inverted


def _sklearn_eer(scores, labels) -> float:
    """s3prl's sv_voxceleb1 EER: roc_curve + brentq on the interpolated ROC."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-12)


def _sklearn_eer_segments(scores, labels) -> float:
    """The same definition computed directly on sklearn's ROC points: where the polyline meets FNR = FPR."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    d = fnr - fpr
    i = int(np.argmax(d <= 0))
    if d[i] == 0:
        return float(fpr[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_eer_matches_sklearn_roc(seed, ties):
    rng = np.random.default_rng(seed)
    n = 20000
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + 1.2 * labels
    if ties:
        scores = np.round(scores, 1)  # many exact ties
    ours = eer(scores, labels) / 100
    assert ours == pytest.approx(_sklearn_eer(scores, labels), abs=1e-6)
    assert ours == pytest.approx(_sklearn_eer_segments(scores, labels), abs=1e-9)


def _brute_min_dcf(scores, labels, p):
    scores, labels = np.asarray(scores), np.asarray(labels)
    best = np.inf
    for thr in np.r_[np.unique(scores), np.inf]:
        accept = scores >= thr
        p_miss = np.mean(~accept[labels == 1])
        p_fa = np.mean(accept[labels == 0])
        best = min(best, p_miss * p + p_fa * (1 - p))
    return best / min(p, 1 - p)


def test_min_dcf_by_hand_and_brute_force():
    scores, labels = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0]
    # p=0.01: the best point rejects one target and admits nothing: (1/3 * 0.01) / 0.01 = 1/3
    assert min_dcf(scores, labels, 0.01) == pytest.approx(1 / 3)
    assert min_dcf(scores, labels, 0.5) == pytest.approx(1 / 3)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + labels, 1)
    for p in (0.01, 0.05, 0.3):
        assert min_dcf(scores, labels, p) == pytest.approx(_brute_min_dcf(scores, labels, p), abs=1e-12)
    with pytest.raises(ValueError, match="p_target"):
        min_dcf(scores, labels, 0.0)


def test_eer_scales_to_millions_of_trials():
    rng = np.random.default_rng(0)
    n = 2_000_000
    labels = rng.integers(0, 2, n)
    scores = (rng.normal(size=n) + 2 * labels).astype(np.float32)
    value = eer(scores, labels)  # one sort: a pairwise implementation would not finish here
    dcf = min_dcf(scores, labels, 0.01)
    assert 10 < value < 20 and 0 < dcf <= 1  # d' = 2: EER = Phi(-1) = 15.9 %


def test_eer_refuses_bad_input():
    with pytest.raises(ValueError, match="target and non-target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        eer([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="0 .non-target. or 1"):
        eer([0.1, 0.2], [1, 2])


def test_relative_improvement_by_hand():
    assert relative_improvement("per", 8.0, 10.0) == pytest.approx(20.0)
    assert relative_improvement("accuracy", 90.0, 80.0) == pytest.approx(50.0)  # error 20 -> 10
    assert relative_improvement("eer", 6.0, 5.0) == pytest.approx(-20.0)
    assert relative_improvement("accuracy", 99.0, 100.0) is None  # no reference error to reduce
    assert task_error("accuracy", 81.42) == pytest.approx(18.58)
    mean, used = mean_relative_improvement({"pr": ("per", 8.0), "sid": ("accuracy", 90.0), "er": ("accuracy", 1.0)},
                                           {"pr": ("per", 10.0), "sid": ("accuracy", 80.0)})
    assert used == ["pr", "sid"] and mean == pytest.approx(35.0)
