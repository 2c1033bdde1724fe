import json

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
    got = bank.read(u)
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


def test_streamed_batches_are_the_cached_frames_grouped_by_length(corpus, tiny_jooci, tmp_path):
    """FrameBatches against a reference built here from the memory-mapped store: utterances sorted
    by length, grouped greedily while longest x count stays within the budget, zero-padded float16
    of the (normalised) selected layers."""
    import torch.nn.functional as F

    from jooci.store import open_store
    from jooci.superb.tasks.common import FeatureView, FrameBatches

    module, info, fp = load_upstream(tiny_jooci)
    utts = read_manifest(corpus / "dev.jsonl", check_durations=False)
    extract_missing(module, info, tmp_path, utts, progress=False)
    bank = FeatureBank(tmp_path, list(range(5)))
    paths = json.loads((tmp_path / "chunk_0000" / "paths.json").read_text())
    store = open_store(tmp_path / "chunk_0000")  # mapped: the reference reads the arrays directly
    row_of = {tuple(paths[int(uid)]): store.locate(uid) for uid in store.ids}
    layers, budget = [1, 3, 4], 600

    def reference(u, normalize):
        shard, k = row_of[(u.path, u.num_samples)]
        x = torch.stack([torch.from_numpy(np.array(shard.utterance(k, layer))).float() for layer in layers])
        return F.layer_norm(x, x.shape[-1:]) if normalize else x

    lengths = [bank.num_frames(u) for u in utts]
    order = sorted(range(len(utts)), key=lambda i: lengths[i])
    groups, cur = [], []
    for i in order:
        if cur and max(lengths[j] for j in cur + [i]) * (len(cur) + 1) > budget:
            groups.append(cur)
            cur = []
        cur.append(i)
    groups.append(cur)
    for normalize in (False, True):
        view = FeatureView(bank, normalize, layers)
        streamed = FrameBatches(view, utts, budget)
        assert len(streamed) == len(groups) > 1 and [b.rows for b in streamed] == groups
        for b in (streamed[0], streamed[len(groups) - 1], *streamed):  # by index (shuffled order) and in turn
            t = max(lengths[r] for r in b.rows)
            assert b.x.dtype == torch.float16 and b.x.shape == (3, len(b.rows), t, 64)
            for col, r in enumerate(b.rows):
                n = lengths[r]
                assert b.lengths[col] == n
                assert torch.equal(b.x[:, col, :n], reference(utts[r], normalize).half())
                assert not b.x[:, col, n:].any()
        u = utts[2]
        assert torch.equal(view.read(u, 5, 30), reference(u, normalize)[:, 5:30])  # a crop read alone (ASV)
        pooled = view.pooled(utts[:3])
        assert torch.equal(pooled[1], reference(utts[1], normalize).mean(dim=1)) and pooled.shape == (3, 3, 64)
