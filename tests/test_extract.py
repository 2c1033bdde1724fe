import json

import numpy as np
import pytest
import soundfile as sf
import torch

from jooci.data.manifest import Utterance
from jooci.models import JOOCI
from jooci.extract import ExtractError, extract_manifest, extract_to_shards


def _corpus(tmp_path, n_good: int = 5, bad: bool = True) -> list[Utterance]:
    rng = np.random.default_rng(0)
    utts = []
    for i in range(n_good):
        n = 4000 + 1500 * i
        path = tmp_path / f"u{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
        utts.append(Utterance(id=f"u{i}", path=str(path), num_samples=n))
    if bad:
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF\x00\x00not a wav")
        utts.insert(2, Utterance(id="broken", path=str(broken), num_samples=1000))
    return utts


def test_shards_hold_the_features_of_each_utterance(tmp_path):
    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path)
    out = tmp_path / "feats"
    summary = extract_to_shards(model, utts, out, layers=[0, 2, 4], batch_seconds=1.0, progress=False,
                                shard_size=3, dtype="float32", max_skipped=0.5)
    assert summary.layers == [0, 2, 4] and summary.num_utterances == 5
    assert summary.shards == ["shard_00000", "shard_00001"]
    assert [s["id"] for s in summary.skipped] == ["broken"] and "broken.wav" in summary.skipped[0]["path"]
    index = json.loads((out / "index.json").read_text())
    assert index["skipped"][0]["id"] == "broken" and index["num_frames"] == summary.num_frames
    ids = (out / "shard_00000.ids").read_text().split() + (out / "shard_00001.ids").read_text().split()
    assert ids == ["u0", "u1", "u2", "u3", "u4"]
    lens = [int(x) for x in (out / "shard_00000.len").read_text().split()]
    feats = np.load(out / "shard_00000.layer04.npy")
    assert feats.shape == (sum(lens), model.cfg.content.dim) and feats.dtype == np.float32
    # the second utterance's rows equal the model run on it alone
    from jooci.audio import load_audio

    with torch.no_grad():
        alone = model.extract_features(torch.from_numpy(load_audio(utts[1].path))[None]).hidden_states[4][0]
    np.testing.assert_allclose(feats[lens[0] : lens[0] + lens[1]], alone.numpy(), atol=1e-4)


def test_too_many_bad_files_fail_the_run_naming_them(tmp_path):
    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path, n_good=2)
    with pytest.raises(ExtractError, match="broken.wav"):
        extract_to_shards(model, utts, tmp_path / "f", progress=False, max_skipped=0.1)
    with pytest.raises(ExtractError, match="out of range"):
        extract_to_shards(model, utts[:1], tmp_path / "g", layers=[99], progress=False)


def test_extract_manifest_loads_a_model_folder(tmp_path):
    model = JOOCI.from_preset("tiny")
    model.save_pretrained(tmp_path / "model")
    utts = _corpus(tmp_path, n_good=2, bad=False)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(u.to_json() + "\n" for u in utts))
    summary = extract_manifest(tmp_path / "model", manifest, tmp_path / "out", layers=[1], progress=False)
    assert summary.num_utterances == 2 and summary.layers == [1]
    assert np.load(tmp_path / "out" / "shard_00000.layer01.npy").dtype == np.float16


def test_rerun_replaces_the_earlier_run(tmp_path):
    from jooci.store import open_store

    model = JOOCI.from_preset("tiny").eval()
    utts = _corpus(tmp_path, n_good=3, bad=False)
    out = tmp_path / "feats"
    extract_to_shards(model, utts, out, layers=[1], progress=False, shard_size=1)
    assert len(list(out.glob("shard_*.len"))) == 3
    summary = extract_to_shards(model, utts[:2], out, layers=[1, 2], progress=False, shard_size=5)
    assert summary.shards == ["shard_00000"] and len(list(out.glob("shard_*.len"))) == 1
    store = open_store(out)
    assert store.ids == ["u0", "u1"] and store.layers == [1, 2] and store.index["version"] == 1
