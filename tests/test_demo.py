"""jooci demo end to end at toy scale: every stage runs, the report has every metric and plot,
and a second run reuses every stage."""

import json

import pytest

from jooci.cli import main

STEPS = [f"schedule.{p}.steps=3" for p in ("content", "teacher", "phase1", "phase2")] + \
        [f"schedule.{p}.warmup_steps=1" for p in ("content", "teacher", "phase1", "phase2")]


def test_demo_runs_reports_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--preset", "tiny", "--minutes", "2", "--speakers", "8", *STEPS]
    assert main(args) == 0
    report = (out / "report" / "report.md").read_text()
    for png in ("layer_weights.png", "layerwise.png", "training_curves.png"):
        assert (out / "report" / png).stat().st_size > 1000
    for model in ("fbank", "baseline", "jooci", "jooci_untrained-other"):
        doc = json.loads((out / "eval" / model / "results.json").read_text())
        assert set(doc["tasks"]) == {"pr", "asr", "sid", "asv", "er"}
        assert f"| {model.replace('_', ' ')} |" in report
    assert "JOOCI" in report.split("\n")[2]  # the verdict paragraph
    speaker = json.loads((out / "eval" / "verify.json").read_text())
    assert [r["source"] for r in speaker] == ["log-mel mean + std (no learning)",
                                              "untrained teacher (same architecture, no training)",
                                              "RDINO teacher", "jooci Other embedding",
                                              "jooci untrained-other Other embedding"]
    assert "Control: the same JOOCI with its Other encoder untrained" in report
    assert (out / "eval" / "untrained-teacher" / "model.safetensors").is_file()
    assert "Against an untrained network of its own architecture" in report
    assert all(0 <= r["eer"] <= 100 for r in speaker) and "## Where the speaker information is" in report
    stage_times = json.loads((out / "stage_times.json").read_text())
    printed = capsys.readouterr().out
    assert "== stage 5/5: report" in printed and "from scratch on a 2-core CPU" in printed
    assert list(stage_times) == ["corpus", "pretrain", "evaluate", "speaker check", "report"]
    baseline = (out / "pretrain" / "baseline-extra" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(baseline[-1])["step"] == 3, "the baseline gets phase 2's number of extra Content updates"
    capsys.readouterr()

    finished = sorted(out.rglob("*.safetensors")) + sorted(out.rglob("results.json"))
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    assert main(args) == 0
    # a second run reuses every finished stage: no model and no result is written again
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps
    assert "report:" in capsys.readouterr().out


def test_estimate_follows_the_work():
    from jooci.train.config import preset_path
    from jooci.demo import estimate_seconds
    from jooci.train.config import load_config

    small = estimate_seconds(load_config(preset_path("small"), []), 60, 0)
    assert list(small) == ["corpus", "pretrain", "evaluate", "speaker check", "report"]
    assert 8 * 60 < sum(small.values()) < 20 * 60  # the reference machine's demo: see REFERENCE_SECONDS
    longer = estimate_seconds(load_config(preset_path("small"), ["schedule.scale=2"]), 60, 0)
    assert longer["pretrain"] > 1.7 * small["pretrain"] and longer["evaluate"] == small["evaluate"]
    ablated = estimate_seconds(load_config(preset_path("small"), []), 60, 2)
    assert "ablations" in ablated and ablated["evaluate"] > small["evaluate"]
    external = estimate_seconds(load_config(preset_path("small"), ["run.teacher_init=t"]), 60, 0)
    assert small["pretrain"] - external["pretrain"] > 150  # 300 teacher steps are not run


def _doc(values: dict, items: dict | None = None) -> dict:
    metric = {"pr": "per", "asr": "wer", "sid": "accuracy", "asv": "eer", "er": "accuracy"}
    return {"tasks": {t: {"metric": metric[t], "value": v, "extra": {"items": items[t]} if items else {}}
                      for t, v in values.items()}}


def test_verdict_reads_accuracy_as_higher_is_better():
    """Point values (results without per-item records): SID/ER accuracy up is a win, PER/EER down is a win."""
    from jooci.demo import verdict

    base = _doc({"pr": 70.0, "asr": 99.0, "sid": 23.0, "asv": 37.0, "er": 45.0})
    good = _doc({"pr": 68.0, "asr": 99.0, "sid": 40.0, "asv": 30.0, "er": 50.0})
    text = verdict({"jooci": good, "baseline": base})
    assert text.startswith("**JOOCI beat the baseline on every Other task (SID, ASV, ER) without losing")
    assert "JOOCI better: PR, SID, ASV, ER; worse: none" in text
    text = verdict({"jooci": base, "baseline": good})
    assert "did not beat" in text and "worse: PR, SID, ASV, ER" in text


def test_verdict_uses_the_paired_bootstrap_when_items_exist():
    from jooci.demo import verdict

    n = 200
    right = {"pr": [[1, 10]] * n, "asr": [[9, 10]] * n, "sid": [1] * 150 + [0] * 50, "er": [1] * 100 + [0] * 100,
             "asv": [[i / n, i % 2] for i in range(n)]}
    # JOOCI: a little better on ER (101 vs 100 right): within noise, so not a win
    jooci = dict(right, er=[1] * 101 + [0] * 99)
    text = verdict({"jooci": _doc({"pr": 10, "asr": 90, "sid": 75, "asv": 50, "er": 50.5}, jooci),
                    "baseline": _doc({"pr": 10, "asr": 90, "sid": 75, "asv": 50, "er": 50}, right)})
    assert "did not beat" in text and "no clear difference: PR, ASR, SID, ASV, ER" in text
    assert "ER +0.5 [" in text


def test_verdict_credits_the_other_encoders_training_only_where_jooci_beats_the_control():
    """The control (JOOCI with its Other encoder untrained): a win over the baseline that the control
    matches is not credited to phases 1-2; one that JOOCI also wins against the control is."""
    from jooci.demo import CONTROL, verdict

    n = 200
    base = {"pr": [[1, 10]] * n, "asr": [[9, 10]] * n, "sid": [1] * 100 + [0] * 100,
            "er": [1] * 100 + [0] * 100, "asv": [[i / n, i % 2] for i in range(n)]}
    values = {"pr": 10, "asr": 90, "sid": 50, "asv": 50, "er": 50}
    jooci = dict(base, sid=[1] * 160 + [0] * 40, er=[1] * 160 + [0] * 40)  # wins SID and ER by 30 points
    control = dict(base, er=[1] * 160 + [0] * 40)  # the untrained Other encoder gives ER as well, not SID
    docs = {"jooci": _doc(dict(values, sid=80, er=80), jooci), "baseline": _doc(values, base),
            CONTROL: _doc(dict(values, er=80), control)}
    text = verdict(docs)
    assert "JOOCI better: SID, ER" in text
    assert "JOOCI beats it on SID +30.0; not on ASV +0.0, ER +0.0." in text
    assert "win over the baseline on ER is not shown to come from what phases 1–2 taught" in text
    assert "Its win on SID beats the control too" in text
    # a control better than JOOCI is said so, not read as "about as much"
    worse = dict(docs, **{CONTROL: _doc(dict(values, er=80, asv=50), dict(control, sid=[1] * 190 + [0] * 10))})
    text = verdict(worse)
    assert "JOOCI beats it on no Other task; not on ASV +0.0, ER +0.0, SID -15.0." in text
    assert "On SID the untrained control is better than JOOCI" in text
    del docs[CONTROL]
    assert "Control" not in verdict(docs)


def test_speaker_check_scores_only_new_sources(tmp_path, monkeypatch):
    """A demo rerun with an extra ablation scores that one model, and keeps the rows it has."""
    import jooci.superb.verify as V
    from jooci.demo import speaker_check

    calls = []

    def fake(source, data, *, layer=None, device="cpu", label=None):
        calls.append(label)
        return V.VerifyResult(label, 10.0 + len(calls), {"0.01": 1.0}, 4, 2)

    probes = []

    def fake_probe(source, data, *, layer=None, device="cpu"):
        probes.append(source)
        return {"dev": 50.0, "test": 40.0 + len(probes), "C": 1.0, "num_train": 8, "num_test": 8}

    targets = []

    def fake_targets(source, data, *, temp=0.04, device="cpu"):
        targets.append((source, temp))
        return {"entropy": 7.0, "uniform": 8.3, "top_prob": 0.03, "num_utterances": 4}

    monkeypatch.setattr(V, "verify", fake)
    monkeypatch.setattr(V, "sid_probe", fake_probe)
    monkeypatch.setattr(V, "teacher_targets", fake_targets)
    path = tmp_path / "verify.json"
    first = speaker_check(path, tmp_path, tmp_path / "t", {"jooci": tmp_path / "j"}, "cpu", teacher_temp=0.05)
    # the teacher's targets are read once, at the phases' temperature, on the teacher's row only
    assert targets == [(str(tmp_path / "t"), 0.05)] and first[1]["targets"]["entropy"] == 7.0
    assert "targets" not in first[0] and "targets" not in first[2]
    assert calls == ["log-mel mean + std (no learning)", "RDINO teacher", "jooci Other embedding"]
    assert probes == ["fbank", str(tmp_path / "t"), str(tmp_path / "j")] and first[1]["sid_probe"]["test"] == 42.0
    rows = speaker_check(path, tmp_path, tmp_path / "t", {"jooci": tmp_path / "j", "jooci recon": tmp_path / "r"}, "cpu")
    assert calls[3:] == ["jooci recon Other embedding"] and rows[:3] == first and len(probes) == 4
    assert [r["source"] for r in json.loads(path.read_text())][-1] == "jooci recon Other embedding"
    speaker_check(path, tmp_path, tmp_path / "t", {"jooci": tmp_path / "j", "jooci recon": tmp_path / "r"}, "cpu")
    assert len(calls) == 4 and len(probes) == 4
    # an older run's rows have no probe: it is added, the trials are not scored again
    path.write_text(json.dumps([{k: v for k, v in r.items() if k != "sid_probe"} for r in rows]))
    again = speaker_check(path, tmp_path, tmp_path / "t", {"jooci": tmp_path / "j", "jooci recon": tmp_path / "r"}, "cpu")
    assert len(calls) == 4 and len(probes) == 8 and all("sid_probe" in r for r in json.loads(path.read_text()))
    assert [r["eer"] for r in again] == [r["eer"] for r in rows]
    # a plain rerun after an ablation run returns its own rows and keeps the ablation's in the file
    plain = speaker_check(path, tmp_path, tmp_path / "t", {"jooci": tmp_path / "j"}, "cpu")
    assert len(plain) == 3 and len(json.loads(path.read_text())) == 4 and len(calls) == 4
    # a model retrained in the same folder is scored again; the others are not
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "model.safetensors").write_bytes(b"new weights")
    speaker_check(path, tmp_path, tmp_path / "t", {"jooci": tmp_path / "j"}, "cpu")
    assert calls[4:] == ["jooci Other embedding"] and len(probes) == 9
    assert not list(tmp_path.glob(".verify.json.*")) and not list(tmp_path.glob("*.tmp"))  # no temporary file left


def test_speaker_check_scores_the_untrained_reference_like_the_teacher(tmp_path, monkeypatch):
    import jooci.superb.verify as V
    from jooci.demo import UNTRAINED, speaker_check

    calls, targets = [], []
    monkeypatch.setattr(V, "verify", lambda source, data, *, layer=None, device="cpu", label=None: (
        calls.append(label) or V.VerifyResult(label, 10.0, {"0.01": 1.0}, 4, 2)))
    monkeypatch.setattr(V, "sid_probe", lambda source, data, *, layer=None, device="cpu": {"test": 50.0})
    monkeypatch.setattr(V, "teacher_targets", lambda source, data, *, temp=0.04, device="cpu": (
        targets.append(source) or {"entropy": 6.0, "uniform": 8.3, "top_prob": 0.05, "num_utterances": 4}))
    rows = speaker_check(tmp_path / "verify.json", tmp_path, tmp_path / "t", {"jooci": tmp_path / "j"}, "cpu",
                         untrained=tmp_path / "u")
    assert calls == ["log-mel mean + std (no learning)", UNTRAINED, "RDINO teacher", "jooci Other embedding"]
    assert targets == [str(tmp_path / "u"), str(tmp_path / "t")] and "targets" in rows[1]


def test_speaker_reading_says_what_the_teachers_training_gave_it():
    from jooci.demo import UNTRAINED, speaker_reading

    def reading(teacher_eer, untrained_eer, teacher_probe=None, untrained_probe=None):
        rows = [{"source": "log-mel mean + std (no learning)", "eer": 15.0},
                {"source": UNTRAINED, "eer": untrained_eer}, {"source": "RDINO teacher", "eer": teacher_eer}]
        if teacher_probe is not None:
            rows[1]["sid_probe"], rows[2]["sid_probe"] = {"test": untrained_probe}, {"test": teacher_probe}
        return speaker_reading(rows)[0]

    # cosine scoring better, the linear probe not
    geometry = reading(8.0, 11.1, 79.5, 78.0)
    assert "(EER 8.0 against 11.1 %, SID probe 79.5 against 78.0 %)" in geometry
    assert "improved how cosine scores compare unseen speakers, but not" in geometry
    assert "made it a better speaker model" in reading(8.0, 11.1, 90.0, 78.0)
    assert "made it a better speaker model" in reading(8.0, 11.1)  # no probes: the trials decide
    assert "helped a linear head" in reading(10.6, 11.1, 90.0, 78.0)
    nothing = reading(10.6, 11.1, 80.0, 78.0)
    assert "gave it nothing measurable about speakers" in nothing
    assert "left it worse than the untrained network" in reading(13.0, 11.1, 80.0, 78.0)
    assert "left it worse than the untrained network" in reading(10.6, 11.1, 70.0, 78.0)
    # without the reference row there is no such sentence
    assert "untrained" not in speaker_reading([{"source": "log-mel mean + std (no learning)", "eer": 15.0},
                                               {"source": "RDINO teacher", "eer": 8.0}])[0]


def test_demo_refuses_an_unknown_ablation(tmp_path, capsys):
    try:
        main(["demo", "--out", str(tmp_path), "--ablate", "no-such-thing"])
    except SystemExit as e:
        assert e.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_report_setting_names_the_shared_frontend(tmp_path):
    from jooci.train.config import preset_path
    from jooci.demo import setting
    from jooci.train.config import load_config

    small = "\n".join(setting(load_config(preset_path("small"), []), tmp_path, 60))
    assert "shared frontend (both models): 80-bin log-mel at 50 Hz, unnormalised" in small
    assert "teacher 300 (augmented views), phase 1 80" in small
    cnn = "\n".join(setting(load_config(preset_path("small"), [
        "model.frontend.kind=cnn", "model.content.input_dim=512", "model.other.input_dim=512"]), tmp_path, 60))
    assert "shared frontend (both models): the wav2vec 2.0 CNN, 512 channels, group norm" in cnn
    ext = "\n".join(setting(load_config(preset_path("small"), ["run.teacher_init=runs/t/final",
                                                                "schedule.teacher.batch_seconds=64"]), tmp_path, 60))
    assert "(teacher 64 s)" not in ext
    assert "× 150, no teacher stage, phase 1 80" in ext and "teacher 300" not in ext
    assert "- teacher: `runs/t/final`, trained outside this run" in ext


def test_speaker_reading_says_whether_the_teacher_adds_anything_and_whether_jooci_took_it():
    from jooci.demo import speaker_reading

    def rows(stats, teacher, other=None):
        out = [{"source": "log-mel mean + std (no learning)", "eer": stats}, {"source": "RDINO teacher", "eer": teacher}]
        return out + ([{"source": "jooci Other embedding", "eer": other}] if other is not None else [])

    weak = speaker_reading(rows(15.1, 14.2, 13.2))[0]
    assert "knows no more about speakers" in weak and "as good as its teacher" in weak
    assert "log-mel input already carries" in weak
    assert "log-mel input" not in speaker_reading(rows(15.1, 14.2, 13.2), mel_frontend=False)[0]
    strong = speaker_reading(rows(18.8, 12.7, 19.4))[0]
    assert "knows more about speakers" in strong and "6.7 points short of its teacher" in strong
    no_jooci = speaker_reading(rows(18.8, 12.7))[0]

    def probed(stats, teacher):  # the SID probe sentence: only with probes on both, "better" past the margin
        out = rows(15.1, 12.0)
        out[0]["sid_probe"], out[1]["sid_probe"] = {"test": stats}, {"test": teacher}
        return speaker_reading(out)[0]

    assert "identifies them no better than the log-mel statistics (83.5 against 87.9 % SID)" in probed(87.9, 83.5)
    assert "nothing to add" in probed(87.9, 91.0)  # +3.1: inside the margin
    assert "better than the log-mel statistics (95.0 against 87.9 % SID)" in probed(87.9, 95.0)
    assert "probe" not in weak
    assert "knows more about speakers" in no_jooci and "Other embedding" not in no_jooci
    assert speaker_reading([{"source": "RDINO teacher", "eer": 10.0}]) == []

    def targets(entropy):  # the teacher's DINO targets: "nearly uniform" from 75 % of ln K on
        out = rows(15.1, 12.0)
        out[1]["targets"] = {"entropy": entropy, "uniform": 8.32, "top_prob": 0.028}
        return speaker_reading(out)[0]

    assert "entropy of 7.04 nats against 8.32" in targets(7.04) and "nearly uniform" in targets(7.04)
    assert "entropy of 0.06 nats" in targets(0.06) and "nearly uniform" not in targets(0.06)
    assert "DINO targets" not in weak


def test_demo_refuses_a_corpus_of_another_format_in_words(tmp_path, capsys):
    """An older version's demo folder holds a format-1 corpus: the demo says so and what to do,
    with no traceback and nothing replaced."""
    corpus = tmp_path / "corpus"
    (corpus / "wav").mkdir(parents=True)
    (corpus / "synth.json").write_text(json.dumps({"format_version": 1, "config": {"minutes": 2.0}}))
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--minutes", "2"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "format_version" in err and "pass another --out" in err
    assert (corpus / "wav").is_dir()


def test_demo_shows_the_traceback_of_a_library_error_but_not_of_its_own_checks(tmp_path, capsys, monkeypatch):
    """A ValueError raised by jooci's own checks is bad input: one line. One raised inside a library
    deep in a run (torch's BatchNorm once stopped a demo this way) is a bug: the traceback is shown,
    so it can be reported, instead of a one-line message that looks like a user error."""
    import torch

    import jooci.demo as D

    def torch_fails(*a, **k):
        torch.nn.functional.batch_norm(torch.zeros(1, 4), None, None, training=True)

    monkeypatch.setattr(D, "run_demo", torch_fails)
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Expected more than 1 value per channel" in err and "Traceback" in err and "likely a bug in jooci" in err

    def jooci_refuses(*a, **k):
        from jooci.train.config import load_config

        load_config(None, ["losses.crops.n_local=1"])

    monkeypatch.setattr(D, "run_demo", jooci_refuses)
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs two rows per crop group" in err and "Traceback" not in err

    def file_missing(*a, **k):  # the standard library's errors are input problems too
        (tmp_path / "nowhere.json").read_text()

    monkeypatch.setattr(D, "run_demo", file_missing)
    assert main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nowhere.json" in err and "Traceback" not in err


def test_demo_corpora_resolve_to_their_settings_and_the_report_names_the_sessions(tmp_path):
    from jooci.data.synth.generate import _config_json
    from jooci.demo import setting
    from jooci.demo.pipeline import corpus_config
    from jooci.train.config import load_config, preset_path

    clean = corpus_config("clean", seed=3)
    assert (clean.minutes, clean.speakers, clean.sessions, clean.seed) == (60.0, 48, 0, 3)
    assert "sessions" not in _config_json(clean)  # format 2, the corpus the current demo reports are on
    s = corpus_config("sessions")
    assert (s.minutes, s.speakers, s.sessions, s.test_sessions, s.heldout_fraction) == (402.0, 360, 8, 2, 0.25)
    small = corpus_config("sessions", minutes=20, speakers=12)
    assert (small.minutes, small.speakers, small.sessions) == (20, 12, 8)
    with pytest.raises(ValueError, match="unknown demo corpus 'nope'"):
        corpus_config("nope")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "synth.json").write_text(json.dumps({"config": _config_json(s)}))
    text = "\n".join(setting(load_config(preset_path("small"), [f"data.corpus={corpus}"]), tmp_path, s.minutes))
    assert "JOOCI-synth, 402 minutes, 360 speakers in 8 recording sessions each (2 of them SID test sessions)" in text


@pytest.mark.slow
def test_demo_on_the_sessions_corpus_at_tiny_scale(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--corpus", "sessions", "--preset", "tiny", "--minutes", "16",
                 "--speakers", "12", *STEPS]) == 0
    synth = json.loads((out / "corpus" / "synth.json").read_text())
    assert synth["format_version"] == 3 and synth["config"]["sessions"] == 8
    asr = json.loads((out / "eval" / "fbank" / "results.json").read_text())["tasks"]["asr"]
    assert "sessions each" in (out / "report" / "report.md").read_text() and asr["num_train"] > 0
