"""experiments/asr-demo-scale on a 2-minute corpus, one epoch per protocol (structure only)."""

import json

from conftest import finite, load_script

from jooci.data.manifest import read_manifest


def test_asr_demo_scale_runs_every_protocol(tmp_path):
    script = load_script("asr-demo-scale/asr_demo_scale.py")
    out = tmp_path / "asr"
    assert script.main(["--out", str(out), "--minutes", "2", "--speakers", "8", "--epochs-scale", "0.05",
                        "--protocols", "A,B,C,D,E"]) == 0
    doc = json.loads((out / "asr_demo_scale-A-B-C-D-E.json").read_text())
    rows = doc["protocols"]
    assert set(rows) == {"A", "B", "C", "D", "E"} and finite(doc)
    assert (rows["B"]["width"], rows["D"]["width"], rows["E"]["width"]) == (64, 128, 256)
    corpus = out / "corpus"
    n_train = len(read_manifest(corpus / "train.jsonl"))
    n_both = n_train + len(read_manifest(corpus / "pretrain.jsonl"))
    assert rows["A"]["train_utterances"] == n_train and rows["B"]["train_utterances"] == n_both
    assert rows["C"]["epochs"] == 2 * rows["B"]["epochs"] and rows["A"]["epochs"] == rows["B"]["epochs"]
    assert all(0 <= r["wer"] and 0 <= r["cer"] <= 100 for r in rows.values())


def test_asr_demo_scale_reads_an_existing_corpus(tmp_path):
    from jooci.data.synth import SynthConfig, synthesize

    corpus = synthesize(tmp_path / "c", SynthConfig(minutes=2, speakers=8, seed=1), workers=2, progress=False)
    script = load_script("asr-demo-scale/asr_demo_scale.py")
    out = tmp_path / "asr"
    assert script.main(["--out", str(out), "--corpus", str(corpus), "--protocols", "F", "--epochs-scale", "0.05"]) == 0
    doc = json.loads((out / "asr_demo_scale-F.json").read_text())
    assert doc["corpus"]["seed"] == 1 and not (out / "corpus").exists()
    assert doc["protocols"]["F"]["width"] == 128
    assert doc["protocols"]["F"]["train_utterances"] == len(read_manifest(corpus / "train.jsonl"))
