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
