"""Bad audio files, manifests and label files, crafted for tests/test_bad_inputs.py.

Each audio case is a function ``(path_without_suffix) -> the file written``; the file is a
damaged or unusual version of a 1-second utterance. :data:`BAD_AUDIO` are the files no command may
use (each must be refused or skipped, naming the file); :data:`ODD_AUDIO` are files every command
must accept (resampled / downmixed with a log line).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SECONDS = 1.0


def _noise(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = 0.1 * np.random.default_rng(seed).standard_normal((n, channels))
    return x.astype(np.float32)


def _wav(stem: Path, rate: int = 16000, channels: int = 1, subtype: str = "PCM_16", suffix: str = ".wav",
         fmt: str = "WAV", n: int | None = None) -> Path:
    path = stem.with_suffix(suffix)
    sf.write(path, _noise(int(SECONDS * rate) if n is None else n, channels), rate, subtype=subtype, format=fmt)
    return path


def empty(stem: Path) -> Path:
    """A zero-byte file."""
    path = stem.with_suffix(".wav")
    path.write_bytes(b"")
    return path


def header_only(stem: Path) -> Path:
    """A valid WAV header and no samples."""
    return _wav(stem, n=0)


def truncated(stem: Path) -> Path:
    """A WAV cut in half (the header still promises all of it)."""
    path = _wav(stem)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_header(stem: Path) -> Path:
    """The RIFF magic and the fmt chunk overwritten with garbage."""
    path = _wav(stem)
    data = bytearray(path.read_bytes())
    data[0:36] = b"\x13\x37" * 18
    path.write_bytes(bytes(data))
    return path


def not_audio(stem: Path) -> Path:
    """A text file named .wav (the wrong extension on something that is no audio at all)."""
    path = stem.with_suffix(".wav")
    path.write_text("id\tpath\nthis is a spreadsheet, not audio\n")
    return path


def nan_samples(stem: Path) -> Path:
    path = stem.with_suffix(".wav")
    x = _noise(int(SECONDS * 16000))
    x[100:110] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    return path


def inf_samples(stem: Path) -> Path:
    path = stem.with_suffix(".wav")
    x = _noise(int(SECONDS * 16000))
    x[5] = np.inf
    x[6] = -np.inf
    sf.write(path, x, 16000, subtype="FLOAT")
    return path


def one_sample(stem: Path) -> Path:
    return _wav(stem, n=1)


def rate_2ghz(stem: Path) -> Path:
    """A WAV whose header claims 2^31 - 1 Hz."""
    path = _wav(stem)
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", 2**31 - 1)
    path.write_bytes(bytes(data))
    return path


BAD_AUDIO: dict[str, Callable[[Path], Path]] = {
    "empty": empty, "header_only": header_only, "truncated": truncated, "corrupt_header": corrupt_header,
    "not_audio": not_audio, "nan": nan_samples, "inf": inf_samples, "one_sample": one_sample,
    "rate_2ghz": rate_2ghz,
}

# What each bad file's one line says (a regular expression searched in the message).
BAD_REASON = {
    "empty": r"unreadable or corrupt", "header_only": r"empty audio|0 samples", "truncated": r"truncated",
    "corrupt_header": r"unreadable or corrupt", "not_audio": r"unreadable or corrupt",
    "nan": r"NaN/Inf", "inf": r"NaN/Inf", "one_sample": r"too short", "rate_2ghz": r"sample rate",
}


ODD_AUDIO: dict[str, Callable[[Path], Path]] = {
    "8k": lambda s: _wav(s, rate=8000),
    "44k1": lambda s: _wav(s, rate=44100),
    "48k": lambda s: _wav(s, rate=48000),
    "stereo_24bit_44k1": lambda s: _wav(s, rate=44100, channels=2, subtype="PCM_24"),
    "flac_named_wav": lambda s: _wav(s, fmt="FLAC", suffix=".wav"),  # the wrong extension on good audio
}
