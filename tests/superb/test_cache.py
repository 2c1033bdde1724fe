import numpy as np
import torch

from jooci.audio import load_audio
from jooci.data.manifest import read_manifest
from jooci.superb.cache import FBANK, FeatureBank, extract_missing, load_upstream


def test_cache_holds_each_utterance_once_and_matches_the_model(corpus, tiny_jooci, tmp_path):
    module, info, fp = load_upstream(tiny_jooci)
    assert info.layer_names == ("C0", "C1", "C2", "O1", "O2") and info.dim == 64
    assert 0 < info.num_parameters < 300_000  # upstream only (heads excluded)
    utts = read_manifest(corpus / "dev.jsonl", check_durations=False)
    root = tmp_path / fp
    assert extract_missing(module, info, root, utts + utts[:3], progress=False) == len(utts)  # duplicates once
    assert extract_missing(module, info, root, utts, progress=False) == 0  # all cached
    bank = FeatureBank(root, [0, 4])
    u = utts[1]
    with torch.no_grad():
        ref = module.extract_features(torch.from_numpy(load_audio(u.path))[None])
    got = bank.frames(u)
    assert got.dtype == np.float16 and got.shape == (2, bank.num_frames(u), 64)
    np.testing.assert_allclose(got[1], ref.hidden_states[4][0].numpy(), atol=2e-2, rtol=1e-2)
    # the same fingerprint for the same folder; the fbank floor has its own
    assert load_upstream(tiny_jooci)[2] == fp
    fb, fb_info, fb_fp = load_upstream(FBANK)
    assert fb_info.layer_names == ("fbank",) and fb_info.dim == 80 and fb_fp != fp
    out = fb.extract_features(torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert out.hidden_states[0].shape == (2, 49, 80) and out.lengths.tolist() == [49, 24]
    assert out.hidden_states[0][1, 24:].abs().sum() == 0


def test_interrupted_chunk_is_ignored_then_replaced(corpus, tiny_jooci, tmp_path):
    module, info, fp = load_upstream(tiny_jooci)
    utts = read_manifest(corpus / "dev.jsonl", check_durations=False)
    root = tmp_path / fp
    extract_missing(module, info, root, utts[:2], progress=False)
    (root / "chunk_0001").mkdir()  # an extraction killed before its index.json
    (root / "chunk_0001" / "paths.json").write_text("[]")
    bank = FeatureBank(root, [0])
    assert utts[0] in bank and utts[2] not in bank
    assert extract_missing(module, info, root, utts[:4], progress=False) == 2
    assert sorted(p.name for p in root.glob("chunk_*")) == ["chunk_0000", "chunk_0001"]
    bank = FeatureBank(root, [0])
    assert all(u in bank for u in utts[:4])


def test_chunk_of_another_format_is_extracted_again(corpus, tiny_jooci, tmp_path):
    import json

    module, info, fp = load_upstream(tiny_jooci)
    utts = read_manifest(corpus / "dev.jsonl", check_durations=False)[:2]
    root = tmp_path / fp
    extract_missing(module, info, root, utts, progress=False)
    index = root / "chunk_0000" / "index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "version": 0}))  # an older cache
    assert utts[0] not in FeatureBank(root, [0])
    assert extract_missing(module, info, root, utts, progress=False) == 2
    assert [p.name for p in root.glob("chunk_*")] == ["chunk_0000"] and utts[0] in FeatureBank(root, [0])


class _Stopped(RuntimeError):
    pass


def test_extraction_cut_short_keeps_its_finished_shards(corpus, tiny_jooci, tmp_path, monkeypatch):
    import jooci.superb.cache as cache

    monkeypatch.setattr(cache, "SHARD_UTTERANCES", 2)
    module, info, fp = load_upstream(tiny_jooci)
    utts = read_manifest(corpus / "dev.jsonl", check_durations=False)[:7]
    clean = tmp_path / "clean"
    extract_missing(module, info, clean, utts, batch_seconds=0.1, progress=False)  # one utterance per batch
    assert len(list((clean / "chunk_0000").glob("shard_*.json"))) == 4

    real, calls = module.extract_features, []

    def dies_at_the_fifth_batch(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise _Stopped("killed")
        return real(*a, **k)

    root = tmp_path / "cut"
    monkeypatch.setattr(module, "extract_features", dies_at_the_fifth_batch)
    try:
        extract_missing(module, info, root, utts, batch_seconds=0.1, progress=False)
    except _Stopped:
        pass
    else:
        raise AssertionError("the extraction was not cut short")
    chunk = root / "chunk_0000"
    assert not (chunk / "index.json").exists()
    (chunk / ".shard_00002.layer00.npy.x.tmp").write_bytes(b"left by a SIGKILL")
    (chunk / "shard_00002.len").write_text("3\n")  # files of a shard that never got its index
    bank = FeatureBank(root, [0, 4])
    assert len(bank) == 4  # two finished shards of two (the longest four: longest first)
    longest = sorted(utts, key=lambda u: -u.num_samples)
    assert all(u in bank for u in longest[:4]) and not any(u in bank for u in longest[4:])

    monkeypatch.setattr(module, "extract_features", real)
    assert extract_missing(module, info, root, utts, batch_seconds=0.1, progress=False) == 3  # only the rest
    suffixes = (".ids", ".json", ".len") + tuple(f".layer0{i}.npy" for i in range(5))
    kept = [f"shard_0000{k}{suffix}" for k in (0, 1) for suffix in suffixes]
    assert sorted(p.name for p in chunk.iterdir()) == sorted(kept + ["paths.json"])  # leftovers removed
    bank, ref = FeatureBank(root, [0, 4]), FeatureBank(clean, [0, 4])
    assert len(bank) == len(utts)
    for u in utts:
        np.testing.assert_array_equal(bank.read(u), ref.read(u))


def test_streamed_batches_equal_batches_built_in_memory(corpus, tiny_jooci, tmp_path):
    from jooci.superb.tasks.common import FeatureView, FrameBatches, frame_batches

    module, info, fp = load_upstream(tiny_jooci)
    utts = read_manifest(corpus / "dev.jsonl", check_durations=False)
    extract_missing(module, info, tmp_path, utts, progress=False)
    bank = FeatureBank(tmp_path, list(range(5)))
    for normalize in (False, True):
        view = FeatureView(bank, normalize, [1, 3, 4])
        streamed = FrameBatches(view, utts, 600)
        built = frame_batches(view.frames(utts), 600)
        assert len(streamed) == len(built) > 1
        for a, b in zip(streamed, built):
            assert a.rows == b.rows and torch.equal(a.lengths, b.lengths) and torch.equal(a.x, b.x)
        assert torch.equal(streamed[len(built) - 1].x, built[-1].x)  # by index too (shuffled order)
        u = utts[2]
        assert torch.equal(view.read(u, 5, 30), view.read(u)[:, 5:30])  # a crop read alone (ASV training)
        pooled = view.pooled(utts[:3])
        assert torch.equal(pooled[1], view.read(utts[1]).mean(dim=1)) and pooled.shape == (3, 3, 64)
