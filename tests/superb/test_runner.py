import argparse
import json

import pytest
import torch

from jooci.hub import load
from jooci.superb import evaluate
from jooci.superb.metrics import bootstrap_interval, item_statistic
from jooci.cli.evaluate import add_arguments as add_evaluate_arguments
from jooci.cli.evaluate import run as run_evaluate
from jooci.cli.report import add_arguments as add_report_arguments
from jooci.cli.report import run as run_report
from jooci.superb.report import compare, load_run, markdown

RANGES = {"pr": ("per", 0, 200), "asr": ("wer", 0, 200), "sid": ("accuracy", 0, 100), "asv": ("eer", 0, 100),
          "er": ("accuracy", 0, 100)}


@pytest.fixture(scope="module")
def runs(corpus, tiny_jooci, tmp_path_factory, fast):
    """tiny JOOCI (via the CLI functions) and fbank (via the API) on all five tasks, one shared cache."""
    fast_config = fast
    out = tmp_path_factory.mktemp("eval")
    cache = out / "cache"
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    args = parser.parse_args(["--model", str(tiny_jooci), "--data", str(corpus), "--out", str(out / "jooci"),
                              "--cache", str(cache), "--no-progress"])
    # the CLI path with tiny epochs: run_evaluate builds its config from the defaults, so patch them
    import jooci.superb.runner as runner

    orig = runner.default_settings
    runner.default_settings = lambda: fast_config().tasks
    try:
        torch.set_num_threads(1)
        assert run_evaluate(args) == 0
    finally:
        runner.default_settings = orig
    fb = evaluate("fbank", corpus, ["pr", "asr", "sid", "asv", "er"], out / "fbank",
                  fast_config(cache_dir=str(cache)))
    return out, load_run(out / "jooci"), fb


def test_all_five_metrics_in_range_with_dev_lr_and_weights(runs):
    out, doc, fb = runs
    for d in (doc, fb):
        assert set(d["tasks"]) == set(RANGES)
        for task, (metric, lo, hi) in RANGES.items():
            r = d["tasks"][task]
            assert r["metric"] == metric and lo <= r["value"] <= hi and lo <= r["dev_value"] <= hi, (task, r)
            assert r["lr"] in [float(k) for k in r["lr_sweep"]]
            assert len(r["layer_weights"]) == len(d["model"]["layer_names"])
            assert sum(r["layer_weights"]) == pytest.approx(1.0, abs=1e-5)
            assert r["num_train"] > 0 and r["num_test"] > 0
    asv = doc["tasks"]["asv"]["extra"]
    assert set(asv["min_dcf"]) == {"p_target=0.01", "p_target=0.05"} and "FNR = FPR" in asv["eer_definition"]
    assert all(0 <= v for v in asv["min_dcf"].values())
    assert 0 <= doc["tasks"]["asr"]["extra"]["cer"] <= 200
    assert doc["model"]["layer_names"] == ["C0", "C1", "C2", "O1", "O2"] and fb["model"]["layer_names"] == ["fbank"]
    assert set(doc["probes"]) == {"pr", "sid"} and len(doc["probes"]["pr"]["values"]) == 5
    assert (out / "jooci" / "results.json").is_file() and (out / "jooci" / "layer_weights.png").stat().st_size > 0
    assert doc["timings"]["extract_s"] >= 0 and "er" in doc["timings"]["tasks_s"]


def test_every_task_stores_test_items_that_reproduce_its_value(runs):
    out, doc, fb = runs
    for d in (doc, fb):  # doc read back from results.json, fb as returned
        for task, r in d["tasks"].items():
            items = r["extra"]["items"]
            n = r["extra"]["trials"] if task == "asv" else r["num_test"]
            assert len(items) == n, task
            assert item_statistic(r["metric"], items) == r["value"], task  # exactly the reported value
            low, high = r["extra"]["ci95"]
            assert [low, high] == list(bootstrap_interval(r["metric"], items)) and low <= r["value"] <= high, task
            if task == "asv":  # over speakers too, once there are enough of them for a bootstrap
                from jooci.superb.tasks.asv import MIN_SPEAKER_CLUSTERS

                assert r["extra"]["test_speakers"] >= 2
                assert ("ci95_speakers" in r["extra"]) == (r["extra"]["test_speakers"] >= MIN_SPEAKER_CLUSTERS)
    for task in doc["tasks"]:  # the two models' items are aligned: the same test set, in the same order
        c = compare(doc["tasks"][task], fb["tasks"][task])
        assert c["verdict"] in ("better", "worse", "same") and c["low"] <= c["high"], task
        assert c["difference"] == pytest.approx(doc["tasks"][task]["value"] - fb["tasks"][task]["value"])
        if task in ("pr", "asr", "asv"):  # reference token counts / trial labels, item by item
            a, b = doc["tasks"][task]["extra"]["items"], fb["tasks"][task]["extra"]["items"]
            assert [x[1] for x in a] == [x[1] for x in b], task


def test_report_table_and_plots(runs, tmp_path):
    out, doc, fb = runs
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    args = parser.parse_args([str(out / "fbank"), str(out / "jooci"), "--out", str(tmp_path / "r"),
                              "--labels", "FBANK", "tiny-JOOCI"])
    assert run_report(args) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| model | params (M) | layers | PR PER ↓ | ASR WER ↓ | SID acc ↑ | ASV EER ↓ | ER acc ↑ | mean rel. vs FBANK |" in md
    assert "| FBANK |" in md and "| tiny-JOOCI |" in md and "(reference)" in md
    assert "minDCF p_target=0.01" in md and "Layer-wise analysis" in md and "ASR character error rate" in md
    assert "**Test-set uncertainty.**" in md and "Paired difference to FBANK" in md
    paired = next(line for line in md.splitlines() if line.startswith("| tiny-JOOCI |") and "[" in line
                  and any(w in line for w in ("better", "worse", "within noise")))
    assert paired.count("[") == 5  # one paired interval per task
    for png in ("layer_weights.png", "layerwise.png"):
        assert (tmp_path / "r" / png).read_bytes()[:4] == b"\x89PNG"
    # relative improvement by hand for one task
    fb_e, j_e = 100 - fb["tasks"]["sid"]["value"], 100 - doc["tasks"]["sid"]["value"]
    if fb_e > 0:
        rel = 100 * (fb_e - j_e) / fb_e
        row = next(line for line in md.splitlines() if line.startswith("| tiny-JOOCI | ") and "%" in line
                   and "params" not in line and line.count("|") == 7)
        assert f"{rel:+.1f}%" in row
    with pytest.raises(ValueError, match="reference 'nope'"):
        markdown([doc], reference="nope")
    assert run_report(parser.parse_args([str(tmp_path / "missing"), "--out", str(tmp_path / "r2")])) == 2


def test_upstream_is_frozen_and_results_reproduce(corpus, tiny_jooci, tmp_path, fast):
    model = load(tiny_jooci)
    model.train()  # evaluation must not depend on (or change) the mode it is handed in
    before = {k: v.clone() for k, v in model.state_dict().items()}  # weights and BatchNorm statistics
    cfg = fast(cache_dir=str(tmp_path / "cache"), probes=())
    a = evaluate(model, corpus, ["sid", "er"], tmp_path / "a", cfg)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training  # its mode is given back
    assert all(p.grad is None for p in model.parameters())
    b = evaluate(model, corpus, ["sid", "er"], tmp_path / "b", cfg)  # from the cache
    assert b["timings"]["extracted_utterances"] == 0
    for t in ("sid", "er"):
        assert a["tasks"][t]["value"] == b["tasks"][t]["value"]
        assert a["tasks"][t]["layer_weights"] == b["tasks"][t]["layer_weights"]


def test_content_only_selection_and_bad_arguments(corpus, tiny_baseline, tmp_path, fast):
    doc = evaluate(tiny_baseline, corpus, ["er"], tmp_path / "c", fast(layers="content", probes=()))
    assert doc["selected_layers"] == ["C0", "C1", "C2"] and len(doc["tasks"]["er"]["layer_weights"]) == 3
    with pytest.raises(ValueError, match="no 'other' hidden states"):
        evaluate(tiny_baseline, corpus, ["er"], tmp_path / "d", fast(layers="other"))
    with pytest.raises(ValueError, match="unknown task"):
        evaluate("fbank", corpus, ["kws"], tmp_path / "e", fast())
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert results["model"]["kind"] == "hubert_baseline" and results["model"]["n_other"] == 0


@pytest.mark.slow
def test_default_settings_learn_on_a_10_minute_corpus(tmp_path):
    """The default epochs and LR sweeps on fbank (no model to train) beat chance clearly on PR,
    SID and ASV (ER across held-out speakers from mean log-mel is near chance at this size)."""
    from jooci.data.synth import SynthConfig, synthesize

    root = synthesize(tmp_path / "synth10", SynthConfig(minutes=10, seed=1, speakers=24), workers=2, progress=False)
    doc = evaluate("fbank", root, ["pr", "sid", "asv", "er"], tmp_path / "out")
    t = doc["tasks"]
    n_spk = t["sid"]["extra"]["classes"]
    assert t["pr"]["value"] < 90
    assert t["sid"]["value"] > 3 * 100 / n_spk
    assert t["asv"]["value"] < 30
    assert 0 <= t["er"]["value"] <= 100


def test_cli_refuses_bad_input_with_exit_code_2(corpus, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    bad_model = parser.parse_args(["--model", str(tmp_path / "nope"), "--data", str(corpus), "--out", str(tmp_path / "o"),
                                   "--tasks", "sid"])
    assert run_evaluate(bad_model) == 2
    assert "no config.json" in capsys.readouterr().err
    bad_task = parser.parse_args(["--model", "fbank", "--data", str(corpus), "--out", str(tmp_path / "o"), "--tasks", "kws"])
    assert run_evaluate(bad_task) == 2
    assert "unknown task" in capsys.readouterr().err
    bad_pairs = parser.parse_args(["--model", "fbank", "--data", f"pr={corpus}", "--out", str(tmp_path / "o"),
                                   "--tasks", "pr,sid"])
    assert run_evaluate(bad_pairs) == 2
    assert "no data folder given for task(s) sid" in capsys.readouterr().err


def test_cli_thread_default_is_the_python_default():
    from jooci.superb.runner import EvalConfig

    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    args = parser.parse_args(["--model", "fbank", "--data", "d", "--out", "o"])
    assert args.threads == EvalConfig.threads == 1
    assert parser.parse_args(["--model", "fbank", "--data", "d", "--out", "o", "--threads", "4"]).threads == 4


def test_summary_table_shows_the_test_interval():
    from jooci.superb.runner import summary_table

    row = {"metric": "accuracy", "value": 40.0, "dev_value": 38.0, "lr": 0.01, "seconds": 1.0}
    doc = {"model": {"name": "m", "kind": "jooci"}, "layer_selection": "all",
           "tasks": {"sid": {**row, "extra": {"ci95": [32.5, 47.25]}}, "er": {**row, "extra": {}}}}
    lines = summary_table(doc).splitlines()
    assert "| sid | accuracy | 40.00 | [32.50, 47.25] |" in lines[4]
    assert "| er | accuracy | 40.00 | - |" in lines[5]


def test_asr_head_width_is_a_setting_and_default_keys_stay(corpus, tmp_path, capsys):
    from jooci.cli import main
    from jooci.superb.runner import _settings_key
    from jooci.superb.tasks.common import TaskSettings

    assert "width" not in _settings_key(TaskSettings(1, (1e-2,)))  # keys of earlier runs still match
    assert _settings_key(TaskSettings(1, (1e-2,), width=16))["width"] == 16
    args = ["evaluate", "--model", "fbank", "--data", str(corpus), "--tasks", "asr", "--epochs", "asr=1",
            "--no-probes", "--no-progress", "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "w16"), "--head-width", "asr=16"]) == 0
    assert main([*args, "--out", str(tmp_path / "w64")]) == 0
    capsys.readouterr()
    w16 = json.loads((tmp_path / "w16" / "results.json").read_text())
    w64 = json.loads((tmp_path / "w64" / "results.json").read_text())
    assert w16["config"]["tasks"]["asr"]["width"] == 16 and w64["config"]["tasks"]["asr"]["width"] is None
    from jooci.superb.cache import FeatureBank, load_upstream
    from jooci.superb.data import DataFolder, task_splits
    from jooci.superb.tasks.asr import ASRTask
    from jooci.superb.tasks.common import FeatureView

    fp = load_upstream("fbank")[2]
    view = FeatureView(FeatureBank(tmp_path / "cache" / fp, [0]), False, [0])
    sp = task_splits("asr", DataFolder(corpus))
    for width, want in ((16, 16), (None, 64)):  # the head the run trains
        head = ASRTask(view, sp, TaskSettings(1, (1e-2,), width=width), 1, 80, False).build_head()
        assert head.lstm.fwd.hidden_size == want and head.proj.out_features == want
    assert main([*args, "--out", str(tmp_path / "bad"), "--head-width", "sid=16"]) == 2
    assert "only asr has a head width" in capsys.readouterr().err
