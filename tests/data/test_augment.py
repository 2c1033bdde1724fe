"""View augmentation: deterministic for a generator, zero at padding, really changes the audio;
real noise (MUSAN layout) at the drawn SNR and real RIRs (RIRS_NOISES layout) aligned to their
direct path; without folders, the synthetic augmentation unchanged."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from jooci.data.augment import AugmentConfig, AugmentError, NoiseBank, RirBank, augment, sound_folders


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


# ---------------------------------------------------------------------------------------------
# Real noise and impulse responses from folders (MUSAN, RIRS_NOISES layouts)

SR = 16000
DELAY, AMP = 37, 0.3  # the fixture's simulated RIR: a delayed, scaled impulse


def _write(path, wav, rate=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wav, dtype=np.float32), rate, subtype="FLOAT")
    return path


@pytest.fixture
def musan(tmp_path):
    """musan/{noise,music,speech}/<source>/*.wav; the speech file is shorter than the views."""
    rng = np.random.default_rng(0)
    root = tmp_path / "musan"
    _write(root / "noise" / "free-sound" / "noise-free-sound-0000.wav", rng.standard_normal(24000) * 0.05)
    _write(root / "noise" / "sound-bible" / "noise-sound-bible-0000.wav", rng.uniform(-0.2, 0.2, 20000))
    t = np.arange(32000) / SR
    _write(root / "music" / "jamendo" / "music-jamendo-0000.wav", 0.3 * np.sin(2 * np.pi * 440 * t))
    _write(root / "speech" / "librivox" / "speech-librivox-0000.wav", rng.standard_normal(5000) * 0.1)
    (root / "README").write_text("not audio")
    return root


@pytest.fixture
def rirs_noises(tmp_path):
    """RIRS_NOISES/simulated_rirs/smallroom/Room001/*.wav (a delayed impulse) beside the folders
    of noises that must not be taken for impulse responses."""
    root = tmp_path / "RIRS_NOISES"
    h = np.zeros(800)
    h[DELAY] = AMP
    wav = _write(root / "simulated_rirs" / "smallroom" / "Room001" / "Room001-00001.wav", h)
    (wav.parents[1] / "rir_list").write_text(f"--rir-id smallroom-Room001-00001 --room-id smallroom-Room001 {wav}\n")
    rng = np.random.default_rng(1)
    _write(root / "real_rirs_isotropic_noises" / "RVB2014_type1_noise_largeroom1_1.wav", rng.standard_normal(8000))
    _write(root / "pointsource_noises" / "noise-free-sound-0001.wav", rng.standard_normal(8000))
    return root


def _speech(b=6, s=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    wav = torch.randn(b, s, generator=g) * 0.1
    lengths = torch.tensor([s - 1777 * i for i in range(b)])
    wav[torch.arange(s)[None] >= lengths[:, None]] = 0
    return wav, lengths


def _old_augment(waveforms, lengths, cfg, *, generator):
    """``augment`` as it was before the folders (commit 054226b), kept to prove the fallback."""
    from jooci.data.augment import causal_convolve

    b, s = waveforms.shape
    valid = (torch.arange(s)[None, :] < lengths[:, None]).to(waveforms.dtype)
    u = lambda n: torch.rand(n, generator=generator)  # noqa: E731
    x = waveforms
    if cfg.reverb_prob > 0:
        rt60 = cfg.rt60[0] + (cfg.rt60[1] - cfg.rt60[0]) * u(b)
        n = int(cfg.rt60[1] * cfg.sample_rate)
        t = torch.arange(n)[None, :] / cfg.sample_rate
        rir = torch.randn(b, n, generator=generator) * torch.exp(-6.9 * t / rt60[:, None])
        rir[:, 0] = 1.0
        rir = rir / rir.norm(dim=1, keepdim=True)
        wet = causal_convolve(x, rir)
        use = (u(b) < cfg.reverb_prob).to(x.dtype)[:, None]
        x = use * wet + (1 - use) * x
    if cfg.noise_prob > 0:
        snr = cfg.snr_db[0] + (cfg.snr_db[1] - cfg.snr_db[0]) * u(b)
        power = (x.pow(2) * valid).sum(1) / valid.sum(1).clamp(min=1)
        noise = torch.randn(b, s, generator=generator)
        scale = torch.sqrt(power / 10 ** (snr / 10))
        use = (u(b) < cfg.noise_prob).to(x.dtype)
        x = x + (use * scale)[:, None] * noise
    gain = 10 ** ((cfg.gain_db[0] + (cfg.gain_db[1] - cfg.gain_db[0]) * u(b)) / 20)
    return x * gain[:, None] * valid


@pytest.mark.parametrize("kw", [{}, {"noise_prob": 1.0, "reverb_prob": 1.0}, {"noise_prob": 0.0}, {"reverb_prob": 0.0},
                                {"noise_prob": 0.708, "reverb_prob": 0.458}])
def test_without_folders_the_synthetic_augmentation_is_unchanged(kw):
    wav, lengths = _speech()
    cfg = AugmentConfig(**kw)
    assert sound_folders(cfg) is None
    for seed in range(3):
        new = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(seed))
        old = _old_augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(new, old), seed


def test_musan_noise_is_added_at_the_drawn_snr(musan):
    wav, lengths = _speech(b=8)
    cfg = AugmentConfig(noise_dir=str(musan), noise_prob=1.0, reverb_prob=0.0, gain_db=(0.0, 0.0))
    bank = sound_folders(cfg).noise
    assert [bank.files[i].category for i in range(len(bank.files))] == ["noise", "noise", "music", "speech"]
    seen = set()
    for seed in range(6):
        draws = bank.draw(lengths, cfg, torch.Generator().manual_seed(seed))
        out = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(seed))  # draws the same first
        for i, (d, n) in enumerate(zip(draws, lengths.tolist())):
            f = bank.files[d.file]
            seen.add(f.category)
            lo, hi = cfg.category_snr_db(f.category)
            assert lo <= d.snr_db <= hi
            added = (out[i, :n] - wav[i, :n]).double().numpy()
            snr = 10 * np.log10(wav[i, :n].double().pow(2).mean().item() / np.mean(added ** 2))
            assert abs(snr - d.snr_db) < 0.01, (f.category, snr, d.snr_db)
            source = sf.read(f.path, dtype="float64")[0]
            segment = source[d.offset:d.offset + n] if len(source) >= n else np.resize(source, n)  # short: repeated
            assert np.corrcoef(added, segment)[0, 1] > 0.9999
            assert float(out[i, n:].abs().sum()) == 0
    assert seen == {"noise", "music", "speech"}


def test_a_delta_rir_leaves_the_signal_unchanged_and_a_second_tap_echoes(rirs_noises, tmp_path):
    wav, lengths = _speech()
    cfg = AugmentConfig(rir_dir=str(rirs_noises), reverb_prob=1.0, noise_prob=0.0, gain_db=(0.0, 0.0))
    bank = sound_folders(cfg).rirs
    assert [f.path for f in bank.files] == [str(next((rirs_noises / "simulated_rirs").rglob("*.wav")))]
    # delayed by 37 samples and scaled by 0.3: the energy normalisation and the direct-path
    # alignment undo both
    out = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, wav, atol=1e-6)

    h = np.zeros(400)
    h[20], h[120] = 1.0, 0.5  # direct path at 20, an echo 100 samples later
    _write(tmp_path / "my_rirs" / "a" / "echo.wav", h)
    cfg = AugmentConfig(rir_dir=str(tmp_path / "my_rirs"), reverb_prob=1.0, noise_prob=0.0, gain_db=(0.0, 0.0))
    out = augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(0))
    echo = torch.nn.functional.pad(wav, (100, 0))[:, :wav.shape[1]]
    valid = torch.arange(wav.shape[1])[None] < lengths[:, None]
    assert torch.allclose(out, (wav + 0.5 * echo) / 1.25 ** 0.5 * valid, atol=1e-5)


def test_draws_are_a_function_of_the_seed(musan, rirs_noises):
    wav, lengths = _speech(b=8)
    cfg = AugmentConfig(noise_dir=str(musan), rir_dir=str(rirs_noises), noise_prob=0.5, reverb_prob=0.5)
    bank = sound_folders(cfg).noise
    draw = lambda seed: bank.draw(lengths, cfg, torch.Generator().manual_seed(seed))  # noqa: E731
    assert draw(3) == draw(3) and draw(3) != draw(4)
    assert None in draw(3) + draw(4) and any(d is not None for d in draw(3))  # noise_prob 0.5: some of each
    run = lambda seed: augment(wav, lengths, cfg, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # a different source of noise than the synthetic augmentation with the same seed
    assert not torch.allclose(a, augment(wav, lengths, AugmentConfig(noise_prob=0.5, reverb_prob=0.5),
                                         generator=torch.Generator().manual_seed(1)))


def test_corrupt_noise_files_are_counted_logged_and_skipped(musan, caplog):
    bad = musan / "noise" / "free-sound" / "noise-free-sound-0001.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    with caplog.at_level(logging.WARNING, logger="jooci.data.augment"):
        bank = NoiseBank(musan)
    assert list(bank.bad) == [str(bad)] and str(bad) in caplog.text
    assert str(bad) not in [f.path for f in bank.files] and len(bank.files) == 4

    # a file that breaks after indexing: the view it was drawn for stays clean, counted once
    cfg = AugmentConfig(noise_dir=str(musan), noise_prob=1.0, reverb_prob=0.0)
    wav, lengths = _speech(b=8)
    draws = bank.draw(lengths, cfg, torch.Generator().manual_seed(0))
    broken = bank.files[draws[0].file].path
    open(broken, "r+b").write(b"\x00" * 64)
    from jooci.data.augment import _real_noise

    valid = (torch.arange(wav.shape[1])[None] < lengths[:, None]).float()
    out = _real_noise(wav, valid, lengths, draws, bank)
    hit = [i for i, d in enumerate(draws) if bank.files[d.file].path == broken]
    assert all(torch.equal(out[i], wav[i]) for i in hit)
    assert not torch.equal(out, wav)  # the other files still add noise
    assert broken in bank.bad and len(bank.bad) == 2


def test_unusable_folders_are_named(tmp_path):
    with pytest.raises(AugmentError, match="noise folder .* not found"):
        NoiseBank(tmp_path / "nowhere")
    (tmp_path / "empty" / "noise").mkdir(parents=True)
    (tmp_path / "empty" / "noise" / "x.wav").write_bytes(b"not audio")
    with pytest.raises(AugmentError, match=r"empty: no readable \.wav"):
        NoiseBank(tmp_path / "empty")
    with pytest.raises(AugmentError, match="not a MUSAN folder"):
        NoiseBank(tmp_path)
    (tmp_path / "no_rirs").mkdir()
    with pytest.raises(AugmentError, match="no_rirs: no .wav impulse response"):
        RirBank(tmp_path / "no_rirs")
    with pytest.raises(AugmentError, match="RIR folder .* not found"):
        sound_folders(AugmentConfig(rir_dir=str(tmp_path / "nowhere")))


def test_a_config_with_the_folders_round_trips(tmp_path):
    from jooci.train.config import load_config, preset_path, save_config

    cfg = load_config(preset_path("tiny"), ["losses.augment.noise_dir=/data/musan",
                                            "losses.augment.rir_dir=/data/RIRS_NOISES",
                                            "losses.augment.speech_snr_db=[15, 20]"])
    assert (cfg.losses.augment.noise_dir, cfg.losses.augment.rir_dir) == ("/data/musan", "/data/RIRS_NOISES")
    assert cfg.losses.augment.category_snr_db("speech") == (15.0, 20.0)
    again = load_config(save_config(cfg, tmp_path / "config.yaml"))
    assert again == cfg
    assert load_config(preset_path("tiny")).losses.augment == AugmentConfig()  # no folders by default


def test_base_has_rdino_views_and_the_small_presets_keep_theirs():
    from jooci.train.config import load_config, preset_path

    base = load_config(preset_path("base")).losses
    assert (base.crops.n_global, base.crops.global_seconds, base.crops.n_local, base.crops.local_seconds) == (
        2, (4.0, 4.0), 4, (2.0, 2.0))
    assert base.augment_teacher_views and (base.augment.noise_dir, base.augment.rir_dir) == (None, None)
    for name in ("tiny", "small"):
        crops = load_config(preset_path(name)).losses.crops
        assert (crops.global_seconds, crops.local_seconds) == ((2.0, 3.0), (1.0, 1.0))
