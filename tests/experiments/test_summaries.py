"""The scripts that only summarise finished evaluations, on results built here."""

import json

from conftest import finite, load_script

TASKS = ("pr", "asr", "sid", "asv", "er")


def test_variant_summary_writes_means_and_a_verdict_per_row(seed_folders, tmp_path, capsys):
    out = tmp_path / "summary.json"
    assert load_script("tools/variant_summary.py").main([*map(str, seed_folders), "--name", "v",
                                                          "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [0, 1, 2, 3] and doc["variant"] == "jooci v"
    assert set(doc["means"]) == {"jooci v", "baseline", "jooci", "jooci untrained-other"}
    for row in ("baseline", "jooci", "jooci untrained-other"):
        assert set(doc[row]) == set(TASKS)
        assert all(set(d) == {"mean", "interval", "verdict", "values"} for d in doc[row].values())
    assert doc["baseline"]["pr"]["verdict"] == "better"  # 3.0-3.3 PER lower in every seed
    assert finite(doc) and "wrote" in capsys.readouterr().out


def test_retrain_summary_gives_the_variant_against_baseline_and_jooci(seed_folders, tmp_path):
    out = tmp_path / "summary.json"
    assert load_script("tools/retrain_phases.py").main([*map(str, seed_folders), "--name", "v",
                                                         "--summary", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"v - baseline", "v - jooci", "dev_means"}
    assert set(doc["v - baseline"]) == set(TASKS) and len(doc["v - baseline"]["asv"]["values"]) == 4
    assert set(doc["dev_means"]) == {"baseline", "jooci", "jooci v"}
    assert finite(doc)


def test_oracle_summary_adds_each_seeds_speaker_check(seed_folders, tmp_path):
    for folder in seed_folders:  # the oracle's row and its speaker check, as oracle_teacher.py leaves them
        (folder / "eval" / "jooci_v").rename(folder / "eval" / "jooci_oracle-teacher")
        check = folder / "ablations" / "oracle-teacher" / "speaker_check.json"
        check.parent.mkdir(parents=True)
        check.write_text(json.dumps({"speaker_check": {"oracle teacher": {"eer": 7.0, "sid_probe": {"dev": 97.0}}}}))
    out = tmp_path / "oracle.json"
    assert load_script("oracle-teacher/oracle_teacher.py").main([*map(str, seed_folders), "--summary", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"oracle-teacher - baseline", "oracle-teacher - jooci", "dev_means", "speaker_check"} <= set(doc)
    assert len(doc["speaker_check"]) == 4 and finite(doc)


def test_teacher_variants_show_prints_the_rows_it_reads(tmp_path, capsys):
    probe = {"dev": 80.0, "test": 82.0, "C": 1.0}
    row = {"name": "k64", "seed": 0, "overrides": [], "phase1": [], "teacher_seconds": 254.0,
           "teacher": {"sid": probe, "style": probe, "eer_dev": 11.27,
                       "targets": {"entropy": 2.99, "uniform": 4.16, "top_prob": 0.257}},
           "phase1_seconds": 170.0, "other": {"sid": probe, "style": probe, "eer_dev": 10.95}}
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([row]))
    assert load_script("teacher-variants/teacher_variants.py").main([str(tmp_path), "--show", "--out", str(rows)]) == 0
    printed = capsys.readouterr().out
    assert "k64" in printed and "11.27" in printed and "10.95" in printed
    assert json.loads(rows.read_text()) == [row]  # --show reads, it does not write
