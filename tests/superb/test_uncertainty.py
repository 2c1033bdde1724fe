"""Test-set uncertainty: per-item records, bootstrap intervals, paired differences, the report section."""


import numpy as np
import pytest

from jooci.superb.metrics import (_Items, accuracy, bootstrap_interval, cluster_bootstrap_interval, eer,
                                  eer_from_counts, error_items, error_rate, item_statistic, paired_bootstrap, seed_interval,
                                  stratified_paired_bootstrap)
from jooci.superb.report import compare, markdown

# --- item_statistic ------------------------------------------------------------------------------


def test_item_statistic_by_hand():
    # pooled: (1 + 0 + 2) edits / (3 + 2 + 0) tokens; the empty reference adds nothing to the denominator
    assert item_statistic("per", [[1, 3], [0, 2], [2, 0]]) == pytest.approx(60.0)
    assert item_statistic("wer", [[4, 4], [0, 6]]) == pytest.approx(40.0)  # not the mean of 100 % and 0 %
    assert item_statistic("accuracy", [1, 0, 1, 1]) == 75.0
    labels, pred = np.array([0, 1, 2, 2, 1, 0, 3]), np.array([0, 1, 1, 2, 1, 2, 3])
    assert item_statistic("accuracy", (labels == pred).astype(int).tolist()) == accuracy(labels, pred)
    # desc: .9+ .8+ .7- .6+ .5- .4-: accepting >= .7 misses 1/3 targets and admits 1/3 non-targets
    trials = [[0.9, 1], [0.8, 1], [0.7, 0], [0.6, 1], [0.5, 0], [0.4, 0]]
    assert item_statistic("eer", trials) == pytest.approx(100 / 3)


def test_item_statistic_refuses_bad_items():
    with pytest.raises(ValueError, match="unknown metric"):
        item_statistic("cer", [1])
    with pytest.raises(ValueError, match="no reference tokens"):
        item_statistic("per", [[1, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"\[edits, reference_tokens\]"):
        item_statistic("wer", [1, 2, 3])
    with pytest.raises(ValueError, match="0/1"):
        item_statistic("accuracy", [1, 2])
    with pytest.raises(ValueError, match="0/1"):
        item_statistic("accuracy", [])
    with pytest.raises(ValueError, match="target and non-target"):
        item_statistic("eer", [[0.1, 1], [0.2, 1]])


def test_error_items_reproduce_error_rate_by_hand():
    refs = [["a", "b", "c"], [], ["x", "y"], ["p"]]
    hyps = [["a", "x", "c", "d"], ["z", "z"], ["y"], []]
    # 1 substitution + 1 insertion; empty reference: left out as in error_rate; 1 deletion; 1 deletion
    assert error_items(refs, hyps) == [[2, 3], [0, 0], [1, 2], [1, 1]]
    assert error_rate(refs, hyps) == pytest.approx(100 * 4 / 6)
    assert item_statistic("per", error_items(refs, hyps)) == error_rate(refs, hyps)
    with pytest.raises(ValueError, match="references"):
        error_items([["a"]], [])
    with pytest.raises(ValueError, match="no reference"):
        error_items([[]], [["a"]])


@pytest.mark.parametrize("seed", [0, 1])
def test_error_items_reproduce_error_rate_exactly_on_random_text(seed):
    rng = np.random.default_rng(seed)
    vocab = ["AA", "B", "K", "AE", "T", "S", "IY"]
    refs = [list(rng.choice(vocab, rng.integers(0, 9))) for _ in range(300)]  # some empty
    hyps = [list(rng.choice(vocab, rng.integers(0, 11))) for _ in range(300)]  # some empty
    items = error_items(refs, hyps)
    assert [n for _, n in items] == [len(r) for r in refs]
    assert any(e > n for e, n in items if n)  # insertions beyond the reference length occur
    assert item_statistic("per", items) == error_rate(refs, hyps)  # exactly, not approximately


# --- the vectorised EER ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_resampled_eer_equals_eer_on_each_resample(seed, ties):
    rng = np.random.default_rng(seed)
    n = 3000
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + 1.5 * labels
    if ties:
        scores = np.round(scores, 1)  # many exact ties: one threshold each
    items = _Items("eer", np.c_[scores, labels].tolist())
    idx = rng.integers(0, n, size=(25, n))
    fast = items.resampled(idx)
    slow = np.array([eer(scores[i], labels[i]) for i in idx])
    assert np.abs(fast - slow).max() < 1e-6
    assert np.ptp(slow) > 0.1  # the resamples do differ: the comparison is not between constants


def test_eer_from_counts_by_hand_and_one_class_rows():
    # the same ROC as test_item_statistic_by_hand, as counts per distinct score (descending)
    pos = np.array([[1, 1, 0, 1, 0, 0]])
    neg = np.array([[0, 0, 1, 0, 1, 1]])
    assert eer_from_counts(pos, neg)[0] == pytest.approx(100 / 3)
    # weights: trial 0.9+ twice and 0.4- twice changes the rates, as repeating them in eer() would
    w_pos, w_neg = np.array([[2, 1, 0, 1, 0, 0]]), np.array([[0, 0, 1, 0, 1, 2]])
    assert eer_from_counts(w_pos, w_neg)[0] == pytest.approx(
        eer([0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.4], [1, 1, 1, 0, 1, 0, 0, 0]))
    # a row without non-targets has no EER; a zero column (absent score) moves nothing
    out = eer_from_counts(np.array([[1, 1], [1, 0]]), np.array([[0, 0], [0, 1]]))
    assert np.isnan(out[0]) and out[1] == 0.0
    assert eer_from_counts(np.array([[1, 1, 0, 0, 1, 0, 0]]), np.array([[0, 0, 0, 1, 0, 1, 1]]))[0] == \
        pytest.approx(100 / 3)


def test_eer_bootstrap_redraws_one_class_resamples():
    # one target among 6 trials: about a third of the resamples hold no target; they are redrawn
    trials = [[0.9, 1], [0.8, 0], [0.7, 0], [0.6, 0], [0.5, 0], [0.4, 0]]
    low, high = bootstrap_interval("eer", trials, resamples=200)
    assert 0.0 <= low <= high <= 100.0
    assert (low, high) == bootstrap_interval("eer", trials, resamples=200)  # deterministic


# --- bootstrap_interval ------------------------------------------------------------------------------


def _accuracy_items(n, p, seed):
    return (np.random.default_rng(seed).random(n) < p).astype(int).tolist()


def _per_items(n, rate, seed):
    rng = np.random.default_rng(seed)
    refs = rng.integers(1, 30, n)
    return np.c_[rng.binomial(refs, rate), refs].tolist()


def _eer_items(n, separation, seed, labels=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n) if labels is None else np.asarray(labels)
    return np.c_[rng.normal(size=n) + separation * labels, labels].tolist()


@pytest.mark.parametrize("metric,make", [("accuracy", lambda n, s: _accuracy_items(n, 0.8, s)),
                                         ("per", lambda n, s: _per_items(n, 0.2, s)),
                                         ("eer", lambda n, s: _eer_items(n, 2.0, s))])
def test_interval_contains_the_estimate_and_narrows_with_more_items(metric, make):
    small, large = make(200, 0), make(5000, 1)
    widths = []
    for items in (small, large):
        value = item_statistic(metric, items)
        low, high = bootstrap_interval(metric, items)
        assert low < value < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # 25x the items: about 1/5 the width
    assert bootstrap_interval(metric, small) == bootstrap_interval(metric, small)  # seeded
    assert bootstrap_interval(metric, small, seed=1) != bootstrap_interval(metric, small)
    lo80, hi80 = bootstrap_interval(metric, small, level=0.8)
    lo95, hi95 = bootstrap_interval(metric, small)
    assert lo95 < lo80 < hi80 < hi95


def test_accuracy_interval_matches_the_binomial_width():
    # n = 2000, p = 0.7: the standard error is 100 * sqrt(.7 * .3 / 2000) = 1.025 points
    items = _accuracy_items(2000, 0.7, 3)
    low, high = bootstrap_interval("accuracy", items, resamples=2000)
    p = np.mean(items)
    assert (high - low) / 2 == pytest.approx(1.96 * 100 * np.sqrt(p * (1 - p) / 2000), rel=0.1)


def test_interval_refuses_bad_arguments():
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval("accuracy", [1, 0], level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval("accuracy", [1, 0], resamples=0)


# --- cluster_bootstrap_interval ------------------------------------------------------------------


def test_cluster_bootstrap_with_one_item_per_cluster_is_the_item_bootstrap_width():
    items = _accuracy_items(2000, 0.7, 4)
    low, high = cluster_bootstrap_interval("accuracy", items, list(range(2000)), resamples=1000)
    p = np.mean(items)
    assert low < 100 * p < high
    assert (high - low) / 2 == pytest.approx(1.96 * 100 * np.sqrt(p * (1 - p) / 2000), rel=0.15)


def test_cluster_bootstrap_widens_when_items_of_a_cluster_agree():
    """40 speakers, each with 50 trials that share a speaker-level offset: the trials are not
    independent, and the speaker bootstrap says so where the trial bootstrap does not."""
    rng = np.random.default_rng(0)
    trials, clusters = [], []
    for spk in range(40):
        shift = rng.normal(0, 1.5)  # how hard this speaker is
        for _ in range(25):
            trials.append([float(rng.normal(1.0 + shift, 1.0)), 1])
            trials.append([float(rng.normal(-1.0 + shift, 1.0)), 0])
            clusters += [spk, spk]
    value = eer([t[0] for t in trials], [t[1] for t in trials])
    lo_t, hi_t = bootstrap_interval("eer", trials, resamples=300)
    lo_c, hi_c = cluster_bootstrap_interval("eer", trials, clusters, resamples=300)
    assert lo_c < value < hi_c and hi_c - lo_c > 1.5 * (hi_t - lo_t)
    assert (lo_c, hi_c) == cluster_bootstrap_interval("eer", trials, clusters, resamples=300)  # seeded


def test_two_way_cluster_bootstrap_keeps_a_pair_when_both_speakers_are_drawn(monkeypatch):
    """The weights by hand: a trial of speakers (a, b) is kept counts[a] * counts[b] times, a
    target trial (a, a) counts[a] times."""
    import jooci.superb.metrics as M

    seen = []
    real = M._Items.resampled
    monkeypatch.setattr(M._Items, "resampled", lambda self, idx: seen.append(idx[0].copy()) or real(self, idx))
    trials = [[0.9, 1], [0.1, 0], [0.8, 1], [0.3, 0]]
    clusters = [("a", "a"), ("a", "b"), ("b", "b"), ("b", "c")]
    cluster_bootstrap_interval("eer", trials, clusters, resamples=5, seed=3)
    rng = np.random.default_rng(3)
    for idx in seen:
        n = np.bincount(rng.integers(0, 3, size=3), minlength=3)  # a, b, c
        want = np.repeat(np.arange(4), [n[0], n[0] * n[1], n[1], n[1] * n[2]])
        assert np.array_equal(idx, want)


def test_cluster_bootstrap_refuses_bad_clusters():
    with pytest.raises(ValueError, match="2 cluster labels for 3 items"):
        cluster_bootstrap_interval("accuracy", [1, 0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        cluster_bootstrap_interval("accuracy", [1, 0, 1], ["a", "a", "a"])
    with pytest.raises(ValueError, match="one label or a pair"):
        cluster_bootstrap_interval("accuracy", [1, 0, 1], ["a", ("a", "b", "c"), "b"])


# --- paired_bootstrap and compare -----------------------------------------------------------------


@pytest.mark.parametrize("metric,items", [("accuracy", _accuracy_items(300, 0.6, 0)), ("per", _per_items(300, 0.3, 0)),
                                          ("eer", _eer_items(300, 1.0, 0))])
def test_paired_bootstrap_of_identical_items_is_exactly_zero(metric, items):
    out = paired_bootstrap(metric, items, [list(x) if isinstance(x, list) else x for x in items])
    assert out["difference"] == 0.0 and out["low"] == 0.0 and out["high"] == 0.0 and out["resamples"] == 1000


def _task(metric, items):
    """A results.json task entry carrying items."""
    return {"metric": metric, "value": item_statistic(metric, items), "extra": {"items": items}}


def test_clearly_better_model_gets_an_interval_excluding_zero():
    # accuracy: higher is better
    good, bad = _accuracy_items(1000, 0.9, 0), _accuracy_items(1000, 0.7, 1)
    c = compare(_task("accuracy", good), _task("accuracy", bad))
    assert c["difference"] == pytest.approx(item_statistic("accuracy", good) - item_statistic("accuracy", bad))
    assert 0 < c["low"] < c["difference"] < c["high"] and c["verdict"] == "better"
    assert compare(_task("accuracy", bad), _task("accuracy", good))["verdict"] == "worse"
    # error rate and EER: lower is better, so a negative difference is "better"
    few = _per_items(500, 0.1, 0)
    c = compare(_task("per", few), _task("per", [[e * 2 + 1, n] for e, n in few]))
    assert c["high"] < 0 and c["verdict"] == "better"
    labels = np.random.default_rng(5).integers(0, 2, 2000)
    sharp, blunt = _eer_items(2000, 3.0, 1, labels), _eer_items(2000, 1.0, 2, labels)
    c = compare(_task("eer", sharp), _task("eer", blunt))
    assert c["high"] < 0 and c["verdict"] == "better"
    assert compare(_task("eer", blunt), _task("eer", sharp))["verdict"] == "worse"


def test_a_one_item_difference_is_within_noise():
    a = _accuracy_items(500, 0.75, 0)
    b = list(a)
    b[0] = 1 - b[0]
    c = compare(_task("accuracy", a), _task("accuracy", b))
    assert c["difference"] != 0 and c["low"] <= 0 <= c["high"] and c["verdict"] == "same"


def test_paired_bootstrap_narrower_than_the_unpaired_intervals():
    # two models that err on mostly the same utterances: pairing removes the shared sampling noise
    rng = np.random.default_rng(0)
    hard = rng.random(1000) < 0.3
    a = (~hard).astype(int)
    b = a.copy()
    b[np.flatnonzero(a)[:40]] = 0  # B also misses 40 easy ones
    pa, pb = bootstrap_interval("accuracy", a.tolist()), bootstrap_interval("accuracy", b.tolist())
    assert pa[0] < pb[1]  # the unpaired intervals overlap ...
    c = compare(_task("accuracy", a.tolist()), _task("accuracy", b.tolist()))
    assert c["low"] > 0 and c["verdict"] == "better"  # ... the paired one does not straddle 0


def test_paired_bootstrap_refuses_different_test_sets():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap("accuracy", [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap("eer", _eer_items(50, 1.0, 0), _eer_items(51, 1.0, 0))
    with pytest.raises(ValueError, match="labels differ"):
        paired_bootstrap("eer", _eer_items(50, 1.0, 0), _eer_items(50, 1.0, 1))
    with pytest.raises(ValueError, match="reference token counts differ"):
        paired_bootstrap("wer", [[1, 3], [0, 2]], [[1, 2], [0, 3]])
    with pytest.raises(ValueError, match="cannot compare"):
        compare(_task("accuracy", [1, 0]), _task("per", [[1, 2], [0, 1]]))


def test_stratified_bootstrap_of_one_pair_is_the_paired_bootstrap():
    a, b = _accuracy_items(300, 0.8, 0), _accuracy_items(300, 0.7, 1)
    one, paired = stratified_paired_bootstrap("accuracy", [(a, b)]), paired_bootstrap("accuracy", a, b)
    assert (one["difference"], one["low"], one["high"]) == (paired["difference"], paired["low"], paired["high"])
    assert one["strata"] == 1


def test_stratified_bootstrap_averages_the_strata_and_narrows():
    pairs = []
    for k in range(4):  # each seed its own test set; B makes one or two more edits per utterance than A
        a = _per_items(300, 0.2, k)
        pairs.append((a, [[e + 1 + i % 2, n] for i, (e, n) in enumerate(a)]))
    out = stratified_paired_bootstrap("per", pairs)
    diffs = [item_statistic("per", a) - item_statistic("per", b) for a, b in pairs]
    assert out["difference"] == pytest.approx(np.mean(diffs)) and out["strata"] == 4
    assert out["low"] < out["difference"] < out["high"] < 0
    width1 = [paired_bootstrap("per", a, b) for a, b in pairs]
    mean_width1 = np.mean([w["high"] - w["low"] for w in width1])
    assert 0.35 < (out["high"] - out["low"]) / mean_width1 < 0.65  # about 1/sqrt(4)
    # each stratum keeps its own test set: a mismatched pair is refused like a paired bootstrap's
    with pytest.raises(ValueError, match="differ in length"):
        stratified_paired_bootstrap("accuracy", [([1, 0], [1, 1]), ([1, 0, 1], [1, 0])])
    with pytest.raises(ValueError, match="no pairs"):
        stratified_paired_bootstrap("accuracy", [])


def test_seed_interval_is_the_student_t_interval_by_hand():
    # [1, 2, 3]: mean 2, sd 1, t(0.975, 2 df) = 4.302653 -> 2 ± 4.302653 / sqrt(3)
    low, high = seed_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.302653 / 3 ** 0.5, abs=1e-5) and high == pytest.approx(2 + 4.302653 / 3 ** 0.5, abs=1e-5)
    assert seed_interval([4.0, 4.0, 4.0, 4.0]) == (4.0, 4.0)
    with pytest.raises(ValueError, match="at least two"):
        seed_interval([1.0])
    with pytest.raises(ValueError, match="at least two"):
        seed_interval([1.0, float("nan")])


def test_compare_is_none_without_items():
    old = {"metric": "accuracy", "value": 50.0, "extra": {"classes": 4}}
    assert compare(old, _task("accuracy", [1, 0])) is None
    assert compare(_task("accuracy", [1, 0]), old) is None
    assert compare({"metric": "eer", "value": 5.0}, {"metric": "eer", "value": 6.0}) is None


def test_bootstrap_of_12700_asv_trials():
    # VoxCeleb1-O has 37,720 trials; 12.7k is the size named in the brief; 1000 resamples each
    items = _eer_items(12_700, 2.0, 0)
    other = _eer_items(12_700, 1.8, 1, labels=[y for _, y in items])
    low, high = bootstrap_interval("eer", items)
    out = paired_bootstrap("eer", items, other)
    assert low < item_statistic("eer", items) < high and out["low"] <= out["difference"] <= out["high"]


# --- the report --------------------------------------------------------------------------------------


def _doc(name, tasks):
    """A minimal results.json: {task: (metric, items or None, value)}."""
    out = {}
    for t, (metric, items, value) in tasks.items():
        extra = {} if items is None else {"items": items, "ci95": list(bootstrap_interval(metric, items))}
        out[t] = {"metric": metric, "value": item_statistic(metric, items) if items is not None else value,
                  "dev_value": 0.0, "lr": 1e-2, "lr_sweep": {"0.01": 0.0}, "best_epoch": 1, "epochs": 1,
                  "seconds": 0.1, "extra": extra}
    return {"model": {"name": name, "num_parameters": 1e6}, "layer_selection": "all", "tasks": out}


def test_report_without_items_renders_without_the_section():
    docs = [_doc("A", {"sid": ("accuracy", None, 50.0), "pr": ("per", None, 30.0)}),
            _doc("B", {"sid": ("accuracy", None, 60.0), "pr": ("per", None, 20.0)})]
    md = markdown(docs)
    assert "| A |" in md and "| B |" in md and "Test-set uncertainty" not in md and "within noise" not in md


def _table_after(lines, marker):
    """{first cell: [other cells]} of the first markdown table after the line starting with ``marker``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(marker))
    rows, seen = {}, False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            seen = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        elif seen:
            break
    return rows


def test_report_shows_intervals_and_paired_verdicts():
    labels = np.random.default_rng(5).integers(0, 2, 1000).tolist()
    ref = _doc("REF", {"sid": ("accuracy", _accuracy_items(800, 0.6, 0), 0), "pr": ("per", _per_items(400, 0.3, 0), 0),
                       "asv": ("eer", _eer_items(1000, 1.0, 1, labels), 0)})
    good = _doc("GOOD", {"sid": ("accuracy", _accuracy_items(800, 0.9, 1), 0),
                         "pr": ("per", _per_items(400, 0.1, 0), 0),  # the same reference lengths (same seed)
                         "asv": ("eer", _eer_items(1000, 1.0, 2, labels), 0)})
    old = _doc("OLD", {"sid": ("accuracy", None, 70.0), "pr": ("per", None, 25.0)})
    md = markdown([ref, good, old], reference="REF")
    lines = md.splitlines()
    # after the main table, before the relative improvements
    assert lines.index(next(x for x in lines if x.startswith("**Test-set uncertainty"))) < \
        lines.index(next(x for x in lines if x.startswith("Relative improvement over REF")))
    ci = _table_after(lines, "**Test-set uncertainty")
    assert ci["model"] == ["PR PER ↓", "SID acc ↑", "ASV EER ↓"]
    lo, hi = ref["tasks"]["sid"]["extra"]["ci95"]
    assert ci["REF"][1] == f"{ref['tasks']['sid']['value']:.2f} [{lo:.2f}, {hi:.2f}]"
    assert ci["OLD"] == ["-", "-", "-"]  # an older results.json: no cells, still a row
    paired = _table_after(lines, "Paired difference to REF")
    assert set(paired) == {"model − REF", "---", "GOOD", "OLD"} and paired["OLD"] == ["-", "-", "-"]
    pr, sid, asv = paired["GOOD"]
    assert pr.startswith("-") and pr.endswith("better")  # PER down: better
    assert sid.startswith("+") and sid.endswith("better")  # accuracy up: better
    c = compare(good["tasks"]["asv"], ref["tasks"]["asv"])
    assert asv == f"{c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] " + \
        {"better": "better", "worse": "worse", "same": "within noise"}[c["verdict"]]
    # the reference's view of GOOD: worse on both
    paired = _table_after(markdown([ref, good], reference="GOOD").splitlines(), "Paired difference to GOOD")
    assert paired["REF"][0].endswith("worse") and paired["REF"][1].endswith("worse")
    # tasks on different trial lists are named, not crashed on
    other = _doc("OTHER", {"asv": ("eer", _eer_items(999, 1.0, 3), 0)})
    assert _table_after(markdown([ref, other]).splitlines(), "Paired difference to REF")["OTHER"][2] == \
        "not the same test set"
