import json

import numpy as np
import pytest

from jooci.data.manifest import Utterance, read_label_file, read_manifest
from jooci.cli import main
from jooci.targets import TargetsConfig, label_quality, make_targets, mfcc_source
from jooci.targets.quality import frame_phones, quality_from_counts, random_labels


def test_measures_by_hand():
    q = quality_from_counts(np.array([[2.0, 0.0], [0.0, 2.0]]))
    assert q.phone_purity == q.cluster_purity == pytest.approx(1.0) and q.pnmi == pytest.approx(1.0)
    q = quality_from_counts(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert q.pnmi == pytest.approx(0.0) and q.phone_purity == pytest.approx(0.5)
    # one cluster holding two phones 3:1, another pure: phone purity (3 + 2) / 6
    q = quality_from_counts(np.array([[3.0, 0.0], [1.0, 2.0]]))
    assert q.phone_purity == pytest.approx(5 / 6) and q.cluster_purity == pytest.approx(5 / 6)


def test_frame_phone_is_the_segment_under_the_frame_centre():
    utt = Utterance("u", "x.wav", 1360, alignment=[("sil", 0, 500), ("AA", 500, 900), ("B", 900, 1360)])
    # 50 Hz frames: centres at 200, 520, 840, ...
    assert frame_phones(utt, 4) == ["sil", "AA", "AA", "B"]


def test_pnmi_of_mfcc_kmeans_beats_random_labels(synth_corpus, tmp_path, capsys):
    manifest = synth_corpus / "all.jsonl"
    make_targets(manifest, tmp_path, mfcc_source(), TargetsConfig(ks=(100,), fraction=1.0), progress=False)
    utts = read_manifest(manifest)
    labels = read_label_file(tmp_path / "k100.km")
    q = label_quality(utts, labels, 100)
    r = label_quality(utts, random_labels(labels, 100, seed=1), 100)
    with capsys.disabled():
        print(f"\nJOOCI-synth 1 min, K=100: PNMI MFCC k-means {q.pnmi:.3f} vs random {r.pnmi:.3f}; "
              f"phone purity {q.phone_purity:.3f} vs {r.phone_purity:.3f}")
    assert q.pnmi > r.pnmi + 0.2
    assert q.phone_purity > r.phone_purity

    assert main(["targets", "--quality", "--manifest", str(manifest), "--labels", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 100 |" in out and "PNMI" in out
    rec = json.loads((tmp_path / "quality.json").read_text())
    assert rec["label_sets"]["100"]["pnmi"] == pytest.approx(q.pnmi)
    assert rec["random_labels"]["100"]["pnmi"] < q.pnmi
