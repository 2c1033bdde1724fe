"""The scripts that read finished models, on untrained tiny models (no training)."""

import json
import shutil
from pathlib import Path

from conftest import finite, load_script


def test_sid_diagnostic_probes_every_source(untrained_demo, tmp_path):
    out = tmp_path / "sid.json"
    assert load_script("sid-diagnostic/sid_diagnostic.py").main([str(untrained_demo), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())[str(untrained_demo)]
    for key in ("log-mel mean", "log-mel mean + std", "teacher embedding", "jooci Other embedding"):
        assert {"dev", "test", "C", "dim"} <= set(doc[key]), key
    assert any(k.startswith("baseline ") for k in doc) and any(k.startswith("jooci ") for k in doc)
    assert all(0 <= v["test"] <= 100 for v in doc.values()) and finite(doc)


def test_teacher_at_scale_drops_every_speaker_with_a_demo_voice(corpus, tmp_path):
    from jooci.data.manifest import read_manifest

    corpus = Path(shutil.copytree(corpus, tmp_path / "teacher-corpus"))  # the script writes manifests into it
    script = load_script("teacher-at-scale/teacher_at_scale.py")
    speakers = json.loads((corpus / "speakers.json").read_text())
    demo = tmp_path / "demo-corpus"  # a "demo corpus" with the voices of half of this corpus's speakers
    demo.mkdir()
    (demo / "speakers.json").write_text(json.dumps(speakers[::2]))
    names, kept = script.disjoint_manifests(corpus, [demo])
    assert names == [f"disjoint-{s}" for s in script.SPLITS]
    demo_voices = script.voices(demo)
    left = [s for s in speakers if (s["accent"], s["variant"]) not in demo_voices]
    assert kept["of"] == len(speakers) and kept["speakers"] == len(left) < len(speakers)
    assert kept["excluded_voices"] == len(demo_voices) and kept["minutes"] > 0
    voice = {s["id"]: (s["accent"], s["variant"]) for s in speakers}
    utts = [u for name in names for u in read_manifest(corpus / name, check_files=False)]
    assert utts and all(voice[u.speaker] not in demo_voices for u in utts)
    assert finite(kept)


def test_untrained_other_evaluates_the_twin_on_every_task(untrained_demo, capsys):
    assert load_script("untrained-other/untrained_other.py").main([str(untrained_demo)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(printed["test"]) == set(printed["dev"]) == {"pr", "asr", "sid", "asv", "er"}
    assert (untrained_demo / "ablations" / "untrained-other" / "model").is_dir()
    assert (untrained_demo / "eval" / "jooci_untrained-other" / "results.json").is_file() and finite(printed)
