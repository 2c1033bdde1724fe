import importlib.util
import os
import sys
import types
import warnings

import pytest
import torch

from jooci.features import deltas, frame_lengths, log_mel, mfcc, num_frames

CNN = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2  # wav2vec2 / HuBERT conv layers (kernel, stride)


def _cnn_frames(n: int) -> int:
    for k, s in CNN:
        n = (n - k) // s + 1 if n >= k else 0
    return n


def test_num_frames_is_the_cnn_count():
    assert [num_frames(n) for n in (0, 399, 400, 719, 720, 1039, 16000)] == [0, 0, 1, 1, 2, 2, 49]
    for n in list(range(380, 2000)) + [16000 * 7 + 123]:
        assert num_frames(n, 50) == _cnn_frames(n), n
    assert num_frames(16000, 100) == 98
    assert frame_lengths(torch.tensor([399, 400, 16000])).tolist() == [0, 1, 49]
    with pytest.raises(ValueError):
        num_frames(16000, 25)


def _batch():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([16000, 12345, 4000, 399])
    x = torch.randn(4, 16000, generator=g) * 0.1
    x = x * (torch.arange(16000)[None, :] < lengths[:, None])
    return x, lengths


@pytest.mark.parametrize("fn,dim", [(mfcc, 39), (log_mel, 80)])
@pytest.mark.parametrize("rate", [50, 100])
def test_shapes_counts_and_batch_invariance(fn, dim, rate):
    x, lengths = _batch()
    feats, n = fn(x, lengths, rate=rate)
    assert n.tolist() == [num_frames(int(k), rate) for k in lengths]
    assert feats.shape == (4, int(n.max()), dim)
    for b in range(4):
        single, n1 = fn(x[b : b + 1, : int(lengths[b])], rate=rate)
        assert int(n1) == int(n[b])
        assert torch.allclose(feats[b, : n[b]], single[0], atol=1e-4)
        assert (feats[b, n[b] :] == 0).all()


def test_50hz_is_the_even_100hz_frames():
    x, lengths = _batch()
    m50, n50 = mfcc(x, lengths, rate=50)
    m100, n100 = mfcc(x, lengths, rate=100)
    assert torch.allclose(m50, m100[:, ::2][:, : m50.shape[1]] * (m50 != 0), atol=1e-5)
    assert n50.tolist() == [(int(k) + 1) // 2 for k in n100]
    l50, _ = log_mel(x, lengths, rate=50)
    l100, _ = log_mel(x, lengths, rate=100)
    assert torch.allclose(l50[0], l100[0, ::2], atol=1e-5)


def test_deltas_of_a_ramp():
    x = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1).repeat(2, 1, 1)
    d = deltas(x, torch.tensor([6, 4]))
    # interior: sum_k k (2k) / 10 = 1; edges replicate the row's own first / last valid frame
    assert torch.allclose(d[0, :, 0], torch.tensor([0.5, 0.8, 1.0, 1.0, 0.8, 0.5]))
    assert torch.allclose(d[1, :4, 0], torch.tensor([0.5, 0.8, 0.8, 0.5]))


def _lhotse_layers():
    """lhotse's kaldi layers without running ``lhotse/__init__`` (it needs urllib3 in 1.33, which
    lhotse does not declare). Stand-in package modules are removed again afterwards, so a later
    ``import lhotse`` elsewhere behaves as usual."""
    spec = importlib.util.find_spec("lhotse")
    if spec is None or spec.submodule_search_locations is None:
        return None
    root = list(spec.submodule_search_locations)[0]
    before = {k: v for k, v in sys.modules.items() if k == "lhotse" or k.startswith("lhotse.")}
    try:
        for name, path in (("lhotse", root), ("lhotse.features", os.path.join(root, "features")),
                           ("lhotse.features.kaldi", os.path.join(root, "features", "kaldi"))):
            if name not in sys.modules:
                mod = types.ModuleType(name)
                mod.__path__ = [path]
                sys.modules[name] = mod
        import lhotse.features.kaldi.layers as layers
        return layers
    except Exception:
        return None
    finally:
        for k in [k for k in sys.modules if k == "lhotse" or k.startswith("lhotse.")]:
            if k not in before:
                del sys.modules[k]
        sys.modules.update(before)


def test_agrees_with_lhotse_kaldi_layers():
    L = _lhotse_layers()
    if L is None:
        pytest.skip("lhotse's kaldi layers are not importable here")
    x, _ = _batch()
    x = x[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snip_edges=True warns about lhotse's own cut durations
        ref_m = L.Wav2MFCC(frame_shift=0.01, snip_edges=True, high_freq=0.0, num_filters=23, num_ceps=13)(x)
        ref_f = L.Wav2LogFilterBank(frame_shift=0.02, snip_edges=True, high_freq=0.0, num_filters=80)(x)
    mine_m, _ = mfcc(x, rate=100, with_deltas=False)
    mine_f, _ = log_mel(x, rate=50)
    assert mine_m.shape == ref_m.shape and mine_f.shape == ref_f.shape
    assert torch.allclose(mine_m, ref_m, atol=2e-3, rtol=1e-4)
    assert torch.allclose(mine_f, ref_f, atol=2e-3, rtol=1e-4)
