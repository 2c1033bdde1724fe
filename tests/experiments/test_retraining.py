"""The scripts that train (phases 1-2, a teacher, phase 1 alone) in a finished demo folder, at the
tiny preset with two steps per phase. They share one real tiny ``jooci demo`` (``tiny_demo``),
which alone takes longer than the fast suite's budget, so they are ``slow``."""

import json

import pytest

from conftest import finite, load_script

TWO_STEPS = ["schedule.phase1.steps=2", "schedule.phase1.warmup_steps=1",
             "schedule.phase2.steps=2", "schedule.phase2.warmup_steps=1"]
SET = [x for o in TWO_STEPS for x in ("--set", o)]

pytestmark = pytest.mark.slow


def test_retrain_phases_trains_evaluates_and_writes_dev_values(tiny_demo):
    assert load_script("tools/retrain_phases.py").main([str(tiny_demo), "--name", "smoke", "--preset", "tiny",
                                                         *SET]) == 0
    doc = json.loads((tiny_demo / "ablations" / "smoke" / "dev.json").read_text())
    assert set(doc["dev"]) == {"baseline", "jooci", "smoke"}
    assert all(set(v) == {"pr", "asr", "sid", "asv", "er"} for v in doc["dev"].values())
    assert (tiny_demo / "eval" / "jooci_smoke" / "results.json").is_file() and finite(doc)


def test_oracle_teacher_trains_on_labels_and_checks_its_speakers(tiny_demo):
    script = load_script("oracle-teacher/oracle_teacher.py")
    assert script.main([str(tiny_demo), "--steps", "2", "--preset", "tiny", *SET]) == 0
    doc = json.loads((tiny_demo / "ablations" / "oracle-teacher" / "speaker_check.json").read_text())
    assert doc["teacher_steps"] == 2
    for row in doc["speaker_check"].values():
        assert 0 <= row["eer"] <= 100 and {"dev", "test"} <= set(row["sid_probe"])
    assert finite(doc)


def test_phase1_steps_measures_the_teacher_and_each_length(tiny_demo, tmp_path):
    out = tmp_path / "rows.json"
    teacher = tiny_demo / "pretrain" / "teacher" / "final"
    assert load_script("phase1-steps/phase1_steps.py").main([str(tiny_demo), "--teacher", f"rdino={teacher}",
                                                             "--steps", "2", "--preset", "tiny", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["teacher"], r["steps"]) for r in rows] == [("rdino", "teacher"), ("rdino", 2)]
    assert all({"sid", "style", "eer_dev"} <= set(r) for r in rows) and "targets" in rows[0]
    assert finite(rows)


def test_teacher_variants_trains_a_teacher_and_its_student(tiny_demo, tmp_path):
    out = tmp_path / "variants.json"
    args = [str(tiny_demo), "--name", "smoke", "--preset", "tiny", "--out", str(out),
            "--set", "schedule.teacher.steps=2", "--set", "schedule.teacher.warmup_steps=1",
            "--phase1", "losses.adversary=confusion", "schedule.phase1.steps=2", "schedule.phase1.warmup_steps=1"]
    assert load_script("teacher-variants/teacher_variants.py").main(args) == 0
    [row] = json.loads(out.read_text())
    assert row["name"] == "smoke" and {"sid", "style", "eer_dev", "targets"} <= set(row["teacher"])
    assert {"sid", "style", "eer_dev"} <= set(row["other"]) and finite(row)


def test_teacher_at_scale_trains_on_its_own_corpus_and_measures_on_the_demos(corpus, tmp_path):
    out = tmp_path / "scale"
    args = ["--out", str(out), "--demo-corpus", str(corpus), "--minutes", "0.5", "--speakers", "8",
            "--steps", "2", "--batch-seconds", "4", "--workers", "0", "--device", "cpu", "--preset", "tiny"]
    assert load_script("teacher-at-scale/teacher_at_scale.py").main(args) == 0
    doc = json.loads((out / "measures.json").read_text())
    assert doc["steps"] == 2 and doc["device"] == "cpu"
    for name in ("teacher", "untrained"):
        assert {"sid", "eer_dev", "targets"} <= set(doc[name])
    assert finite({k: v for k, v in doc.items() if k != "audio_seconds_per_second"})
