"""jooci.audio: every bad-input case raises AudioError naming the file and the reason."""

import logging

import numpy as np
import pytest
import soundfile as sf

from jooci.audio import AudioError, audio_info, load_audio, resampled_length


def _tone(n: int, sr: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1) if channels > 1 else x


def _write(path, x, sr=16000, **kw):
    sf.write(str(path), x, sr, **kw)
    return path


def _raises(path, match, **kw):
    with pytest.raises(AudioError) as info:
        load_audio(path, **kw)
    assert str(path) in str(info.value), "the message names the file"
    assert info.value.path == str(path)
    assert match in info.value.reason
    return info.value


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_loads_formats_as_float32_mono(tmp_path, fmt, subtype):
    x = _tone(8000)
    p = _write(tmp_path / f"a.{fmt.lower()}", x, format=fmt, subtype=subtype)
    y = load_audio(p)
    assert y.dtype == np.float32 and y.ndim == 1 and y.shape[0] == 8000
    if fmt != "OGG":  # lossy codec: only the length is exact
        np.testing.assert_allclose(y, x, atol=1e-4)


def test_resamples_and_downmixes_and_says_so(tmp_path, caplog):
    p = _write(tmp_path / "stereo44.wav", _tone(44100, sr=44100, channels=2), sr=44100)
    with caplog.at_level(logging.INFO, logger="jooci.audio"):
        y = load_audio(p)
    assert y.shape[0] == resampled_length(44100, 44100) == 16000
    text = caplog.text
    assert "downmixing 2 channels" in text and "resampling 44100 Hz -> 16000 Hz" in text and str(p) in text
    # the downmix is the channel mean: channels 0.5x and 1.0x of a tone -> 0.75x, resampled
    ref = load_audio(_write(tmp_path / "mono16.wav", 0.75 * _tone(16000), subtype="FLOAT"))
    np.testing.assert_allclose(y[200:-200], ref[200:-200], atol=5e-3)


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.wav", "file not found")


def test_unreadable_file(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"this is not audio at all" * 10)
    _raises(p, "unreadable or corrupt")


def test_truncated_wav(tmp_path):
    p = _write(tmp_path / "cut.wav", _tone(16000))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # header still promises 16000 samples
    e = _raises(p, "truncated")
    assert "declares" in e.reason


def test_truncated_flac(tmp_path):
    p = _write(tmp_path / "cut.flac", np.random.default_rng(0).normal(0, 0.1, 32000), format="FLAC")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError) as info:
        load_audio(p)
    assert str(p) in str(info.value)
    assert "truncated" in info.value.reason or "corrupt" in info.value.reason


def test_empty_audio(tmp_path):
    p = _write(tmp_path / "empty.wav", np.zeros(0))
    _raises(p, "empty audio")


def test_shorter_than_one_frame(tmp_path):
    p = _write(tmp_path / "short.wav", _tone(399))
    e = _raises(p, "too short")
    assert "399 samples" in e.reason
    assert load_audio(_write(tmp_path / "ok.wav", _tone(400))).shape == (400,)


def test_short_after_resampling(tmp_path):
    # 1000 samples at 48 kHz are 334 samples at 16 kHz: less than one frame
    p = _write(tmp_path / "short48.wav", _tone(1000, sr=48000), sr=48000)
    _raises(p, "too short")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = _tone(4000).astype(np.float32)
    x[100] = bad
    p = _write(tmp_path / "nan.wav", x, subtype="FLOAT")
    e = _raises(p, "NaN/Inf")
    assert e.reason.startswith("1 ")


def test_max_duration(tmp_path):
    p = _write(tmp_path / "long.wav", _tone(48000))
    e = _raises(p, "too long", max_seconds=2.0)
    assert "3.00 s" in e.reason and "2 s" in e.reason
    assert load_audio(p, max_seconds=3.0).shape == (48000,)


def test_audio_info_reads_header(tmp_path):
    p = _write(tmp_path / "i.flac", _tone(12345, sr=22050, channels=2), sr=22050, format="FLAC")
    info = audio_info(p)
    assert (info.sample_rate, info.num_samples, info.channels, info.format) == (22050, 12345, 2, "FLAC")
