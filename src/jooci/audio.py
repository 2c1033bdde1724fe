"""Audio in: load, validate, downmix and resample to float32 16 kHz mono.

Every model in jooci sees 16 kHz mono float32 in [-1, 1]. This module is the one place where a file
becomes such an array, and the one place that decides a file is unusable. It never hands back
silently damaged audio: a missing, unreadable, truncated, empty, too-short, non-finite or too-long
file raises :class:`AudioError`, whose message names the file and the reason. Resampling and
downmixing are done explicitly, and logged (once per file) so nobody mistakes a 44.1 kHz stereo
corpus for a 16 kHz mono one.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The rate every model in jooci works at."""

MIN_SAMPLES = 400
"""The receptive field of the first CNN layer (25 ms at 16 kHz): shorter audio yields no frame."""

RATE_RANGE = (1000, 768000)
"""Sample rates (Hz) a file may have. A header outside it is damaged; resampling from a 2 GHz
"rate" would ask scipy for a filter of hundreds of GiB."""


class AudioError(Exception):
    """A file that cannot be used as audio. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, checked against what the file holds."""

    path: str
    sample_rate: int
    num_samples: int  # frames per channel, at `sample_rate`
    channels: int
    format: str  # soundfile's name: "WAV", "FLAC", "OGG", ...
    subtype: str

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header without decoding the samples.

    Raises :class:`AudioError` for a missing or unreadable file, and for a WAV file whose header
    promises more data than the file holds (a truncated download or copy).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(path, f"unreadable or corrupt audio ({_short(e)})") from None
    if info.format == "WAV":
        _check_wav_data_chunk(path)
    if not RATE_RANGE[0] <= info.samplerate <= RATE_RANGE[1]:
        raise AudioError(path, f"sample rate {info.samplerate} Hz in the header is outside "
                               f"{RATE_RANGE[0]}..{RATE_RANGE[1]} Hz (a damaged header?)")
    return AudioInfo(str(path), int(info.samplerate), int(info.frames), int(info.channels),
                     info.format, info.subtype)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    max_seconds: float | None = None,
    min_samples: int = MIN_SAMPLES,
) -> np.ndarray:
    """Load a WAV/FLAC/OGG file as float32 mono at ``sample_rate``.

    Args:
        path: the audio file.
        sample_rate: the rate to return; the file is resampled (polyphase, scipy) if it differs.
        max_seconds: refuse files longer than this (None: no limit).
        min_samples: refuse audio shorter than this many samples after resampling (default: one
            CNN frame, 400 samples at 16 kHz).

    Returns:
        ``(num_samples,)`` float32 array in [-1, 1] (floating-point files are returned as stored).

    Raises:
        AudioError: naming the file and the reason (missing, unreadable/corrupt/truncated, empty,
            too short, NaN/Inf samples, longer than ``max_seconds``).
    """
    info = audio_info(path)
    if info.num_samples == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if max_seconds is not None and info.duration > max_seconds:
        raise AudioError(path, f"too long: {info.duration:.2f} s exceeds the maximum of {max_seconds:g} s")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(path, f"unreadable or corrupt audio ({_short(e)})") from None
    if data.shape[0] != info.num_samples:
        # libsndfile read fewer frames than the header promised: the file is cut short.
        raise AudioError(path, f"truncated: header says {info.num_samples} samples, "
                               f"only {data.shape[0]} could be read")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(path, f"{bad} NaN/Inf samples")
    if data.shape[1] > 1:
        log.info("%s: downmixing %d channels to mono (channel mean)", path, data.shape[1])
        wav = data.mean(axis=1)
    else:
        wav = data[:, 0]
    if sr != sample_rate:
        log.info("%s: resampling %d Hz -> %d Hz", path, sr, sample_rate)
        wav = resample(wav, sr, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(path, f"too short: {wav.shape[0]} samples at {sample_rate} Hz, "
                               f"fewer than the {min_samples} one frame needs")
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Polyphase resampling of a 1-D signal (scipy ``resample_poly``, Kaiser window).

    Output length is ``ceil(len(wav) * new_rate / orig_rate)``.
    """
    if orig_rate == new_rate:
        return wav
    ratio = Fraction(new_rate, orig_rate)
    out = resample_poly(wav.astype(np.float64), ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def resampled_length(num_samples: int, orig_rate: int, new_rate: int = SAMPLE_RATE) -> int:
    """Length of ``num_samples`` samples at ``orig_rate`` after :func:`resample` to ``new_rate``."""
    if orig_rate == new_rate:
        return num_samples
    return math.ceil(num_samples * new_rate / orig_rate)


def _check_wav_data_chunk(path: Path) -> None:
    """Refuse a RIFF/WAVE file whose `data` chunk claims more bytes than the file has.

    libsndfile silently shortens such files to what is there (and so does every reader built on
    it); a truncated copy would then pass for a complete, shorter utterance. Only the chunk
    headers are read.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return  # RF64, W64 and friends: left to libsndfile
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            (length,) = struct.unpack(fmt, chunk[4:])
            if chunk[:4] == b"data":
                if length != 0xFFFFFFFF and pos + 8 + length > size:
                    raise AudioError(path, f"truncated: WAV data chunk declares {length} bytes, "
                                           f"the file holds {size - pos - 8}")
                return
            pos += 8 + length + (length & 1)


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
