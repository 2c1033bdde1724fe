"""experiments/demo-corpus/measure_corpus.py on a small corpus with sessions (structure only)."""

import json

import pytest
from conftest import finite, load_script

pytest.importorskip("pyroomacoustics")


def test_measure_corpus_reports_every_property(tmp_path):
    from jooci.data.synth import SynthConfig, synthesize

    corpus = synthesize(tmp_path / "corpus", SynthConfig(minutes=6, speakers=12, sessions=4, test_sessions=2,
                                                         seed=2, rooms=4), workers=2, progress=False)
    script = load_script("demo-corpus/measure_corpus.py")
    assert script.main([str(corpus), "--out", str(tmp_path / "m"), "--steps", "2"]) == 0
    doc = json.loads((tmp_path / "m" / "properties.json").read_text())
    a, b, c = (doc["properties"][k] for k in "abc")
    assert finite(doc["fbank_verify"]) and 0 <= a["fbank_cosine_eer"] <= 100
    # the count (c) judges is what the harness's SID task scored
    sid = json.loads((tmp_path / "m" / "eval-fbank" / "results.json").read_text())["tasks"]["sid"]
    assert c["sid_test_utterances"] == sid["num_test"] == len(sid["extra"]["items"])
    assert c["asv_trials"] == len((corpus / "trials.txt").read_text().split("\n")) - 1
    # a corpus this small cannot meet (c); the script says so rather than passing it
    assert c["sid_test_utterances"] < script.SID_TEST_MIN and not c["met"] and "(c)" in doc["verdict"]
    assert c["sid_test_in_train_sessions"] == 0 and c["cross_session_target_share"] == 1.0
    assert json.loads((tmp_path / "m" / "supervised" / "train_log.json").read_text())["splits"] == ["train"]
    with pytest.raises(ValueError, match="trained with"):  # a model of other steps is not passed off as this one
        script.main([str(corpus), "--out", str(tmp_path / "m"), "--steps", "3"])
    assert 0 <= c["sid_disagreement"] <= 1 and (tmp_path / "m" / "supervised" / "final" / "config.json").is_file()
