"""Fuzz jooci.audio: random bytes and damaged WAV/FLAC files give audio or an AudioError naming the file."""

import numpy as np
import pytest
import soundfile as sf
from fuzzkit import expect_clean, fuzz, inputs, write
from hypothesis import given
from hypothesis import strategies as st

from jooci.audio import MIN_SAMPLES, AudioError, audio_info, load_audio

# (name, samples, rate, channels, format, subtype): small, so a fuzzed copy reads in a millisecond.
VALID = [
    ("pcm16.wav", 800, 16000, 1, "WAV", "PCM_16"),
    ("float.wav", 600, 16000, 1, "WAV", "FLOAT"),
    ("stereo24.wav", 1200, 44100, 2, "WAV", "PCM_24"),
    ("mono.flac", 1000, 16000, 1, "FLAC", "PCM_16"),
    ("8k.flac", 500, 8000, 1, "FLAC", "PCM_16"),
    ("vorbis.ogg", 2000, 16000, 1, "OGG", "VORBIS"),
]


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """Each VALID file's bytes, by name."""
    d = tmp_path_factory.mktemp("valid_audio")
    rng = np.random.default_rng(0)
    out = {}
    for name, n, sr, ch, fmt, sub in VALID:
        x = (0.3 * rng.standard_normal((n, ch))).clip(-1, 1).astype(np.float32)
        sf.write(d / name, x, sr, format=fmt, subtype=sub)
        out[name] = (d / name).read_bytes()
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_audio")


def _check_audio(path):
    info = expect_clean(lambda: audio_info(path), path, (AudioError,))
    if info is not None:
        assert info.num_samples >= 0 and info.channels >= 1 and info.sample_rate > 0
    wav = expect_clean(lambda: load_audio(path), path, (AudioError,))
    if wav is not None:
        assert wav.dtype == np.float32 and wav.ndim == 1
        assert wav.shape[0] >= MIN_SAMPLES and np.isfinite(wav).all()


@pytest.mark.parametrize("name", [v[0] for v in VALID])
@fuzz(150)
@given(data=st.data())
def test_damaged_audio(valid, work, name, data):
    blob = data.draw(inputs(valid[name], lines=False))
    _check_audio(write(work / name, blob))


@fuzz(100)
@given(blob=st.binary(max_size=2048), ext=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ""]))
def test_random_bytes(work, blob, ext):
    _check_audio(write(work / f"random{ext}", blob))


@fuzz(100)
@given(data=st.data())
def test_wav_header_fields(valid, work, data):
    """Every 32-bit field of the first 64 header bytes set to a boundary value (sizes, rates, counts)."""
    blob = bytearray(valid["pcm16.wav"])
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, 15)) * 4
        value = data.draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
        blob[pos:pos + 4] = value.to_bytes(4, "little")
    _check_audio(write(work / "header.wav", bytes(blob)))


def test_flac_header_claiming_years_of_audio(valid, work):
    """A FLAC STREAMINFO claiming 2^36 samples (a 256 GiB read buffer) is an AudioError naming the
    file, not a MemoryError."""
    blob = bytearray(valid["mono.flac"])
    blob[8 + 13] |= 0x0F  # the 36-bit total-samples field of STREAMINFO, all ones
    blob[8 + 14:8 + 18] = b"\xff\xff\xff\xff"
    path = write(work / "huge.flac", bytes(blob))
    assert audio_info(path).num_samples == 2**36 - 1
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value)
