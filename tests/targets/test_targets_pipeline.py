import json

import numpy as np
import pytest

from jooci.data.manifest import read_label_file, read_manifest, write_label_file
from jooci.features import num_frames
from jooci.cli import main
from jooci.targets import (
    LabelError, TargetsConfig, load_targets, make_targets, mfcc_source, open_shard, shard_range, validate_labels,
)
from jooci.targets.dump import dump_shard


def _cli(*argv):
    return main(["targets", *[str(a) for a in argv]])


@pytest.fixture(scope="module")
def labelled(synth_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("targets")
    rc = _cli("--manifest", synth_corpus / "all.jsonl", "--out", out, "--k", "5,10,20", "--fraction", "1.0",
              "--no-progress")
    assert rc == 0
    return out


def test_three_label_sets_in_one_run(synth_corpus, labelled):
    utts = read_manifest(synth_corpus / "all.jsonl")
    prov = json.loads((labelled / "targets.json").read_text())
    assert sorted(prov["label_sets"]) == ["10", "20", "5"]
    assert prov["label_rate"] == 50 and prov["features"]["name"] == "mfcc" and prov["features"]["dim"] == 39
    assert prov["manifest"]["utterances"] == len(utts) and len(prov["manifest"]["sha256"]) == 64
    assert prov["kmeans"]["fraction"] == 1.0 and prov["kmeans"]["seed"] == 0
    assert prov["frames"]["total"] == sum(num_frames(u.num_samples) for u in utts)
    for k in (5, 10, 20):
        rows = read_label_file(labelled / f"k{k}.km")
        assert [len(r) for r in rows] == [num_frames(u.num_samples) for u in utts]
        assert max(max(r) for r in rows) < k
        assert np.load(labelled / f"k{k}.centroids.npy", allow_pickle=False).shape == (k, 39)
    loaded = load_targets(labelled, utts)
    assert sorted(loaded) == [5, 10, 20] and len(loaded[10]) == len(utts)
    with pytest.raises(LabelError, match="another manifest"):
        load_targets(labelled, utts[::-1])


def test_missing_utterance_and_extra_frame_are_refused(synth_corpus, labelled, tmp_path):
    utts = read_manifest(synth_corpus / "all.jsonl")
    rows = read_label_file(labelled / "k10.km")
    validate_labels(utts, rows, 50)  # the real file passes

    dropped = rows[:7] + rows[8:]
    with pytest.raises(LabelError) as e:
        validate_labels(utts, dropped, 50)
    assert utts[7].id in str(e.value) and "no label row" in str(e.value)
    write_label_file(dropped, tmp_path / "k10.km")
    with pytest.raises(LabelError, match=utts[7].id):
        from jooci.targets import read_labels
        read_labels(tmp_path / "k10.km", utts)

    longer = [list(r) for r in rows]
    longer[3].append(0)
    with pytest.raises(LabelError) as e:
        validate_labels(utts, longer, 50)
    n = num_frames(utts[3].num_samples)
    assert f"{utts[3].id} (label line 4): expected {n} frames at 50 Hz, found {n + 1}" in str(e.value)
    validate_labels(utts, longer, 50, tolerance=1)  # labels made elsewhere may be off by one

    extra = rows[:2] + [rows[2][:5]] + rows[2:]
    with pytest.raises(LabelError, match="extra row"):
        validate_labels(utts, extra, 50)
    with pytest.raises(LabelError, match="order differs"):
        validate_labels(utts, rows, 50, ids=[u.id for u in utts[::-1]])
    with pytest.raises(LabelError, match="outside"):
        validate_labels(utts, rows, 50, num_classes=3)


def test_two_shards_give_the_same_features_and_labels(synth_corpus, labelled, tmp_path):
    manifest = synth_corpus / "all.jsonl"
    # the multi-machine flow: each rank dumps, one fits, each rank labels, one merges
    for r in (0, 1):
        assert _cli("--manifest", manifest, "--out", tmp_path, "--k", "5,10,20", "--fraction", "1.0",
                    "--nshard", 2, "--rank", r, "--step", "dump", "--no-progress") == 0
    assert _cli("--manifest", manifest, "--out", tmp_path, "--k", "5,10,20", "--fraction", "1.0",
                "--nshard", 2, "--step", "fit") == 0
    for r in (0, 1):
        assert _cli("--manifest", manifest, "--out", tmp_path, "--k", "5,10,20", "--nshard", 2, "--rank", r,
                    "--step", "label") == 0
    assert _cli("--manifest", manifest, "--out", tmp_path, "--k", "5,10,20", "--fraction", "1.0",
                "--nshard", 2, "--step", "merge") == 0

    one = open_shard(labelled / "features", 0, 1)
    two = [open_shard(tmp_path / "features", r, 2) for r in (0, 1)]
    assert len(two[0]) > 0 and len(two[1]) > 0
    assert np.array_equal(np.asarray(one.features), np.concatenate([np.asarray(s.features) for s in two]))
    assert one.ids == two[0].ids + two[1].ids
    for k in (5, 10, 20):
        assert (tmp_path / f"k{k}.km").read_text() == (labelled / f"k{k}.km").read_text()


def test_shard_ranges_are_contiguous_and_cover():
    for total in (0, 1, 7, 29, 100):
        for n in (1, 2, 3, 8):
            ranges = [shard_range(total, n, r) for r in range(n)]
            assert ranges[0][0] == 0 and ranges[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError):
        shard_range(10, 2, 2)


def test_wrong_duration_is_named_at_dump(synth_corpus, tmp_path):
    utts = read_manifest(synth_corpus / "all.jsonl")[:3]
    utts[1].num_samples += 640  # the manifest promises two more frames than the audio has
    with pytest.raises(LabelError, match=utts[1].id):
        dump_shard(utts, mfcc_source(), tmp_path, progress=False)


def test_errors_are_one_line_exit_2(synth_corpus, tmp_path, capsys):
    m = synth_corpus / "all.jsonl"
    assert _cli("--manifest", m, "--out", tmp_path, "--k", "100000", "--fraction", "1.0", "--no-progress") == 2
    assert "raise --fraction or lower K" in capsys.readouterr().err
    assert _cli("--manifest", m, "--out", tmp_path, "--model", tmp_path / "nope", "--layer", "6") == 2
    assert "nope" in capsys.readouterr().err
    assert _cli("--manifest", m, "--out", tmp_path, "--rank", "0") == 2
    assert _cli("--manifest", tmp_path / "missing.jsonl", "--out", tmp_path) == 2


def test_sklearn_backend_and_applying_centroids(synth_corpus, labelled, tmp_path):
    dev = synth_corpus / "dev.jsonl"
    cfg = TargetsConfig(ks=(5, 10), fraction=1.0, backend="sklearn", niter=5)
    rec = make_targets(dev, tmp_path / "sk", mfcc_source(), cfg, progress=False)
    assert rec["kmeans"]["backend"] == "sklearn"
    # labels for another split with the first run's centroids (no fit)
    rec = make_targets(dev, tmp_path / "applied", mfcc_source(), TargetsConfig(ks=(5, 10, 20)),
                       centroids_from=labelled, progress=False)
    assert rec["kmeans"]["centroids_from"] == str(labelled.resolve())
    all_utts = read_manifest(synth_corpus / "all.jsonl")
    dev_ids = [u.id for u in read_manifest(dev)]
    full = dict(zip([u.id for u in all_utts], read_label_file(labelled / "k20.km")))
    assert read_label_file(tmp_path / "applied" / "k20.km") == [full[i] for i in dev_ids]


def test_model_layer_source(synth_corpus, labelled, tmp_path, capsys):
    baseline = pytest.importorskip("jooci.models.baseline")
    model = baseline.HuBERTBaseline.from_preset("tiny")
    model.save_pretrained(tmp_path / "model")
    dev = synth_corpus / "dev.jsonl"
    assert _cli("--manifest", dev, "--out", tmp_path / "it2", "--k", "4,8", "--fraction", "1.0",
                "--model", tmp_path / "model", "--layer", 1, "--no-progress") == 0
    prov = json.loads((tmp_path / "it2" / "targets.json").read_text())
    assert prov["features"]["name"] == "model" and prov["features"]["layer"] == 1
    assert prov["features"]["checkpoint"] == str((tmp_path / "model").resolve())
    load_targets(tmp_path / "it2", read_manifest(dev))
    assert _cli("--manifest", dev, "--out", tmp_path / "bad", "--model", tmp_path / "model", "--layer", 99,
                "--k", "4", "--fraction", "1.0", "--no-progress") == 2
    # MFCC centroids cannot label model features
    assert _cli("--manifest", dev, "--out", tmp_path / "mixed", "--model", tmp_path / "model", "--layer", 1,
                "--k", "5", "--centroids-from", labelled, "--no-progress") == 2
    assert "centroids were fitted on" in capsys.readouterr().err


def test_finished_shard_is_reused_and_unfinished_one_redone(synth_corpus, tmp_path):
    from jooci.store import TooManySkippedError

    utts = read_manifest(synth_corpus / "all.jsonl")[:4]
    prefix = dump_shard(utts, mfcc_source(), tmp_path, progress=False)
    npy = tmp_path / "feat_0_1.npy"
    first, stamp = np.load(npy), npy.stat().st_mtime_ns
    assert dump_shard(utts, mfcc_source(), tmp_path, progress=False) == prefix and npy.stat().st_mtime_ns == stamp
    (tmp_path / "feat_0_1.json").unlink()  # a dump killed before its index
    with pytest.raises(FileNotFoundError, match="unfinished"):
        open_shard(tmp_path, 0, 1)
    dump_shard(utts, mfcc_source(), tmp_path, progress=False)
    assert npy.stat().st_mtime_ns != stamp and np.array_equal(np.load(npy), first)
    assert open_shard(tmp_path, 0, 1).ids == [u.id for u in utts]
    # other utterances: not reused
    dump_shard(utts[:3], mfcc_source(), tmp_path, progress=False)
    assert len(open_shard(tmp_path, 0, 1)) == 3
    # labels need every utterance: one unreadable file fails the dump, naming it
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00not a wav")
    utts[2].path = str(bad)
    with pytest.raises(TooManySkippedError, match="bad.wav"):
        dump_shard(utts, mfcc_source(), tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "feat_0_1.json").exists()
