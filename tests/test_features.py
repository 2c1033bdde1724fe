import importlib.util
import os
import sys
import types
import warnings

import pytest
import torch

from jooci.features import deltas, frame_lengths, log_mel, mfcc, num_frames, rdino_frame_lengths, rdino_log_mel

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


# ---------------------------------------------------------------------------------------------
# 3D-Speaker RDINO's front-end, against a numpy computation written from its definition
# (torchaudio MelSpectrogram(16000, n_fft=512, win_length=400, hop_length=160, f_min=0,
# f_max=8000, n_mels=80) of int16-scale audio, then log(x + 1e-6); docs/method.md T33)


def _rdino_reference(x, n_mels: int = 80, scale: float = 32768.0):
    import numpy as np
    import scipy.signal

    x = np.asarray(x, dtype=np.float64) * scale
    padded = np.pad(x, 256, mode="reflect")  # center=True, pad_mode="reflect"
    window = np.zeros(512)
    window[56:456] = scipy.signal.get_window("hann", 400)  # periodic Hann, centred in the FFT
    frames = np.stack([padded[160 * j : 160 * j + 512] * window for j in range(1 + len(x) // 160)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.arange(257) * 16000 / 512
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731  (HTK)
    edges = 700.0 * (10.0 ** (np.linspace(mel(0.0), mel(8000.0), n_mels + 2) / 2595.0) - 1.0)
    bank = np.stack([np.interp(freqs, edges[m : m + 3], [0.0, 1.0, 0.0], left=0.0, right=0.0)
                     for m in range(n_mels)], axis=1)  # triangles of peak 1, no norm
    return np.log(power @ bank + 1e-6)


def test_rdino_frame_counts_are_the_centred_framings():
    lengths = torch.tensor([0, 1, 159, 160, 399, 400, 63900, 64000])
    assert rdino_frame_lengths(lengths).tolist() == [0, 1, 1, 2, 3, 3, 400, 401]  # 63900: RDINO's 400-frame crops


@pytest.mark.parametrize("n_mels", [80, 40])
def test_rdino_log_mel_matches_the_numpy_reference_in_a_padded_batch(n_mels):
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([16000, 12345, 4000, 399, 257, 100])
    x = 0.1 * torch.randn(len(lengths), 16000, generator=g)
    past = torch.arange(16000)[None] >= lengths[:, None]
    x[past] = 5.0  # loud padding: never read
    feats, n = rdino_log_mel(x, lengths, num_mel_bins=n_mels)
    assert n.tolist() == [1 + int(k) // 160 for k in lengths]
    assert feats.shape == (len(lengths), int(n.max()), n_mels)
    for b, k in enumerate(lengths.tolist()):
        want = torch.from_numpy(_rdino_reference(x[b, :k].numpy(), n_mels)).float()
        assert want.shape[0] == int(n[b])
        torch.testing.assert_close(feats[b, : n[b]], want, atol=1e-4, rtol=0)
        assert (feats[b, n[b] :] == 0).all()
    alone, n1 = rdino_log_mel(x[1:2, :12345], num_mel_bins=n_mels)
    assert int(n1) == int(n[1]) and torch.allclose(alone[0], feats[1, : n[1]], atol=1e-4)


def test_rdino_log_mel_scale_and_empty_rows():
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(2, 3200, generator=g)
    unscaled, _ = rdino_log_mel(x, scale=1.0)  # infer_sv_rdino's [-1, 1] input
    torch.testing.assert_close(unscaled[0], torch.from_numpy(_rdino_reference(x[0].numpy(), scale=1.0)).float(),
                               atol=1e-4, rtol=0)
    feats, n = rdino_log_mel(x, torch.tensor([3200, 0]))
    assert n.tolist() == [21, 0] and (feats[1] == 0).all()
    empty, n0 = rdino_log_mel(x, torch.tensor([0, 0]))
    assert empty.shape == (2, 0, 80) and n0.tolist() == [0, 0]
