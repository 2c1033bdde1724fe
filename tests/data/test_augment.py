"""View augmentation: deterministic for a generator, zero at padding, really changes the audio."""

import torch

from jooci.data.augment import AugmentConfig, augment


def _batch():
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(3, 8000, generator=g) * 0.1
    lengths = torch.tensor([8000, 6000, 3000])
    wav[torch.arange(8000)[None] >= lengths[:, None]] = 0
    return wav, lengths


def test_deterministic_padding_respected_and_audio_changed():
    wav, lengths = _batch()
    cfg = AugmentConfig(noise_prob=1.0, reverb_prob=1.0)
    a = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(1))
    b = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(1))
    c = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == wav.shape and torch.isfinite(a).all()
    assert float(a[1, 6000:].abs().max()) == 0 and float(a[2, 3000:].abs().max()) == 0
    assert float((a - wav).abs().mean()) > 1e-3


def test_noise_at_the_asked_snr():
    wav, lengths = _batch()
    cfg = AugmentConfig(gain_db=(0.0, 0.0), noise_prob=1.0, snr_db=(10.0, 10.0), reverb_prob=0.0)
    out = augment(wav[:1], lengths[:1], cfg, generator=torch.Generator().manual_seed(0))
    noise = out - wav[:1]
    snr = 10 * torch.log10(wav[:1].pow(2).mean() / noise.pow(2).mean())
    assert abs(float(snr) - 10.0) < 0.5


def test_fft_reverb_equals_the_direct_convolution():
    import torch.nn.functional as F

    from jooci.data.augment import causal_convolve

    g = torch.Generator().manual_seed(0)
    for s, n in ((1000, 300), (777, 1200), (16000, 12800)):
        x, h = torch.randn(3, s, generator=g), torch.randn(3, n, generator=g) / n ** 0.5
        direct = F.conv1d(F.pad(x, (n - 1, 0))[None], h.flip(1)[:, None], groups=3)[0]
        assert torch.allclose(causal_convolve(x, h), direct, atol=1e-4), (s, n)
