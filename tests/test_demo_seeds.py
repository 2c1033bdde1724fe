"""jooci demo --seeds: one demo per seed, then mean ± sd, per-seed paired verdicts and win counts."""

import json

import pytest

METRIC = {"pr": "per", "asr": "wer", "sid": "accuracy", "asv": "eer", "er": "accuracy"}
N = 200


def _items(task: str, right: int):
    """Per-item test records that give ``right`` of N correct (accuracy) or that error count (PER/WER)."""
    if task in ("sid", "er"):
        return [1] * right + [0] * (N - right)
    if task == "asv":  # target scores shifted up by right / N: the trials separate better as it grows
        return [[i / N + (i % 2) * right / N, i % 2] for i in range(N)]
    return [[1, 10]] * right + [[0, 10]] * (N - right)


def _write_seed(folder, values: dict[str, dict[str, int]]):
    """A finished demo's eval folders: {model: {task: count}} -> results.json with items."""
    for model, tasks in values.items():
        d = folder / "eval" / model
        d.mkdir(parents=True)
        doc = {"model": {"name": model}, "tasks": {t: _task(t, right) for t, right in tasks.items()}}
        (d / "results.json").write_text(json.dumps(doc))


def _task(t: str, right: int) -> dict:
    from jooci.superb.metrics import _Items

    items = _items(t, right)
    return {"metric": METRIC[t], "value": float(_Items(METRIC[t], items).statistic()), "extra": {"items": items}}


def _seed(jooci_sid: int, jooci_er: int = 120, jooci_asv: int = 60):
    base = {"pr": 60, "asr": 90, "sid": 100, "asv": 60, "er": 100}
    return {"fbank": base, "baseline": base, "jooci": dict(base, sid=jooci_sid, er=jooci_er, asv=jooci_asv)}


def test_summary_counts_wins_per_seed_and_averages(tmp_path):
    from jooci.demo.seeds import seed_table, seed_verdict, write_seed_summary

    folders = {}
    for seed, sid in ((0, 160), (1, 101), (2, 40)):  # clear win, within noise, clear loss
        folders[seed] = tmp_path / f"seed-{seed}"
        _write_seed(folders[seed], _seed(sid))
    report = write_seed_summary(tmp_path, folders)
    table = json.loads((tmp_path / "report" / "summary.json").read_text())
    sid = table["differences"]["sid"]
    assert sid["verdicts"] == ["better", "same", "worse"]
    assert (sid["better"], sid["worse"], sid["same"]) == (1, 1, 1)
    assert table["differences"]["er"]["better"] == 3  # 120 vs 100 of 200 right in every seed
    assert table["differences"]["pr"]["same"] == 3  # identical items: no difference
    sid_values = table["models"]["jooci"]["sid"]["values"]
    assert table["models"]["jooci"]["sid"]["mean"] == pytest.approx(sum(sid_values) / 3)
    assert sid["mean"] == pytest.approx(table["models"]["jooci"]["sid"]["mean"] - table["models"]["baseline"]["sid"]["mean"])
    # the verdict over seeds: SID's differences +30, +0.5, -30 points straddle 0; ER's are +10 in all three
    assert sid["verdict"] == "same" and sid["interval"][0] < 0 < sid["interval"][1]
    assert table["differences"]["er"]["verdict"] == "better"
    assert table["differences"]["er"]["interval"] == pytest.approx([10.0, 10.0])
    assert table["differences"]["pr"]["verdict"] == "same"
    text = report.read_text()
    assert "**Over 3 seeds JOOCI beat the baseline on ER and lost no task; within noise: SID, ASV, PR, ASR.**" in text
    assert "SID: mean difference +0.2 [" in text and "single seeds better in 1, worse in 1, within noise in 1 of 3" in text
    assert "| verdict | within noise | within noise | within noise |" in text  # PR ASR SID; then ASV ER
    assert "| wins / losses |" in text and "(../seed-2/report/report.md)" in text
    assert (tmp_path / "report" / "seeds.png").stat().st_size > 1000
    # every Other task won in every seed -> the strong sentence
    strong = seed_table({s: {m: {"tasks": {t: _task(t, v) for t, v in tasks.items()}}
                             for m, tasks in _seed(170 + s, 170 - s, 170).items()} for s in (0, 1, 2)})
    assert strong["differences"]["asv"]["better"] == 3 and strong["differences"]["asv"]["mean"] < 0
    assert strong["differences"]["asv"]["verdict"] == "better"  # lower EER is better
    assert seed_verdict(strong).startswith("**Over 3 seeds JOOCI beat the baseline on every Other task (SID, ASV, ER) "
                                           "and lost no Content task.**")
    # a Content loss over the seeds is named first
    lost = {s: {m: {"tasks": {t: _task(t, v) for t, v in tasks.items()}} for m, tasks in
                dict(_seed(170), jooci=dict(_seed(170)["jooci"], pr=90 + s)).items()} for s in (0, 1)}
    assert seed_verdict(seed_table(lost)).startswith("**Over 2 seeds JOOCI was worse than the baseline on PR; "
                                                     "better on SID, ER.**")
    # nothing beyond noise anywhere: said so, not "beat the baseline on none"
    level = seed_table({s: {m: {"tasks": {t: _task(t, v) for t, v in tasks.items()}}
                            for m, tasks in _seed(100 + s, 100 - s, 60).items()} for s in (0, 1, 2)})
    assert seed_verdict(level).startswith("**Over 3 seeds JOOCI and the baseline are within noise of each other "
                                          "on every task.**")
    # one seed: no interval over seeds, and the report says so instead of a verdict
    one = seed_table({0: {m: {"tasks": {t: _task(t, v) for t, v in tasks.items()}} for m, tasks in _seed(170).items()}})
    assert one["differences"]["sid"]["interval"] is None and one["differences"]["sid"]["verdict"] is None
    assert seed_verdict(one).startswith("**One seed: no verdict over seeds**")


def test_summary_reads_the_control_over_the_seeds(tmp_path):
    """JOOCI wins ER and SID against the baseline in every seed; the control (JOOCI with its Other
    encoder untrained) matches it on ER but not on SID: only SID is credited to the training."""
    from jooci.demo import CONTROL
    from jooci.demo.seeds import write_seed_summary

    folders = {}
    for seed in (0, 1, 2):
        folders[seed] = tmp_path / f"seed-{seed}"
        models = _seed(160 + seed, 140 + seed)
        models[CONTROL.replace(" ", "_")] = dict(models["baseline"], er=140 + seed)
        _write_seed(folders[seed], models)
    text = write_seed_summary(tmp_path, folders).read_text()
    table = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert table["control"]["er"]["verdict"] == "same" and table["control"]["sid"]["verdict"] == "better"
    assert table["control"]["er"]["mean"] == pytest.approx(0.0)
    assert "**Control** — JOOCI against the same JOOCI with its Other encoder untrained" in text
    assert "ER +0.0 [+0.0, +0.0] within noise" in text
    assert "JOOCI's win over the baseline on ER is not shown to come from what phases 1–2 taught" in text
    assert "Its win on SID beats the control too" in text
    assert "## JOOCI − control over the seeds" in text
    # without the control in every seed there is no such reading
    (folders[2] / "eval" / CONTROL.replace(" ", "_") / "results.json").unlink()
    assert "Control" not in write_seed_summary(tmp_path, folders).read_text()


def test_pooled_interval_resamples_each_seed_within_itself():
    from jooci.demo.seeds import seed_table

    docs = {s: {m: {"tasks": {t: _task(t, v) for t, v in tasks.items()}} for m, tasks in _seed(110).items()}
            for s in range(4)}
    d = seed_table(docs)["differences"]
    one = seed_table({0: docs[0]})["differences"]
    # four identical seeds: the same mean, and the test-sampling interval about half as wide as one seed's
    width4 = d["sid"]["pooled"]["high"] - d["sid"]["pooled"]["low"]
    width1 = one["sid"]["pooled"]["high"] - one["sid"]["pooled"]["low"]
    assert d["sid"]["mean"] == pytest.approx(5.0) and 0.35 < width4 / width1 < 0.65
    # ... while the interval over seeds has no spread to show, since the seeds agree exactly
    assert d["sid"]["interval"] == pytest.approx([5.0, 5.0])


def test_run_demo_seeds_runs_each_seed_in_its_folder(tmp_path, monkeypatch):
    import jooci.demo.seeds as DS

    calls = []

    def fake_demo(out, seed, **kw):
        calls.append((out.name, seed, kw["minutes"]))
        if not (out / "eval").exists():
            _write_seed(out, _seed(100 + 20 * seed))
        return out / "report" / "report.md"

    monkeypatch.setattr(DS, "run_demo", fake_demo)
    report = DS.run_demo_seeds(tmp_path, [3, 5], minutes=2.0)
    assert calls == [("seed-3", 3, 2.0), ("seed-5", 5, 2.0)]
    assert report == tmp_path / "report" / "report.md" and "over 2 seeds" in report.read_text()
    with pytest.raises(ValueError, match="lists a seed twice"):
        DS.run_demo_seeds(tmp_path, [1, 1])


def test_summary_names_a_seed_without_results(tmp_path):
    from jooci.demo.seeds import write_seed_summary

    (tmp_path / "seed-0").mkdir()
    with pytest.raises(FileNotFoundError, match="seed-0: no finished demo evaluation"):
        write_seed_summary(tmp_path, {0: tmp_path / "seed-0"})


def test_the_cli_passes_every_option_to_each_seed(tmp_path, monkeypatch):
    """`jooci demo --seeds` reaches run_demo once per seed with the command line's settings."""
    import jooci.demo.seeds as DS
    from jooci.cli import main

    calls = []

    def fake_demo(out, seed, **kw):
        calls.append((out.name, seed, kw))
        _write_seed(out, _seed(100))
        return out / "report" / "report.md"

    monkeypatch.setattr(DS, "run_demo", fake_demo)
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--minutes", "2", "--speakers", "8",
                 "--ablate", "recon", "--seeds", "4", "7", "--", "schedule.phase2.steps=3"]) == 0
    assert [(name, seed) for name, seed, _ in calls] == [("seed-4", 4), ("seed-7", 7)]
    kw = calls[0][2]
    assert (kw["preset"], kw["minutes"], kw["speakers"], kw["ablate"], kw["overrides"]) == \
        ("tiny", 2.0, 8, ["recon"], ["schedule.phase2.steps=3"])
    assert (tmp_path / "report" / "report.md").exists()
