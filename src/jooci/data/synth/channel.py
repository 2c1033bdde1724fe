"""Recording sessions for JOOCI-synth: what a room, a microphone, a channel and background noise do
to a clean utterance.

A *session* is one recording setting of one speaker. Every utterance of a session passes through
the same :class:`Channel`, in this order (the order of a real recording chain):

1. **room**: convolution with a room impulse response from a pool simulated by
   ``pyroomacoustics`` (image-source model of a shoebox room; :func:`room_impulse_responses`),
   aligned so the direct path stays at sample 0 (Kaldi's ``reverberate_data_dir.py
   --shift-output``) and scaled to unit energy;
2. **noise** at a drawn SNR: white, pink (1/f), brown (1/f²) or *babble*, the sum of a few other
   synthetic speakers given by the caller (:func:`mix_at_snr`);
3. **microphone**: a high-pass roll-off, a presence resonance and a low-pass (``scipy.signal``
   Butterworth and peak filters);
4. **band**: full band, or a telephone channel: 8 kHz sampling, 300-3400 Hz band-pass and G.711
   mu-law companding (8 bits), back at 16 kHz;
5. **level**: a gain, limited so the peak stays below full scale.

Everything is drawn from a seeded generator (:func:`draw_channel`), so a session's channel is a
pure function of the corpus seed; :func:`apply_channel` is deterministic given the channel, the
noise seed and the babble sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, iirpeak, lfilter, resample_poly, sosfilt

SAMPLE_RATE = 16000
NOISE_KINDS = ("white", "pink", "brown", "babble")
_NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent
MU = 255  # G.711 mu-law
TELEPHONE_BAND = (300.0, 3400.0)
MAX_RIR_SECONDS = 1.0


class ChannelError(ValueError):
    """A channel that cannot be applied as given (an unknown kind, a missing babble source)."""


@dataclass(frozen=True)
class Channel:
    """One session's recording chain (module docstring); every field is JSON-able."""

    rir: int  # index into the corpus's impulse-response pool; -1: no room (close-talk, dry)
    noise: str  # one of NOISE_KINDS
    snr_db: float
    highpass_hz: float  # microphone roll-off
    resonance_hz: float  # microphone presence peak
    resonance_db: float  # its boost (0: flat)
    lowpass_hz: float  # microphone / codec top (ignored on a telephone channel)
    telephone: bool
    gain_db: float


def draw_channel(rng: np.random.Generator, num_rirs: int, *, telephone_fraction: float = 0.2,
                 dry_fraction: float = 0.15, snr_db: tuple[float, float] = (5.0, 30.0),
                 noise_kinds: Sequence[str] = NOISE_KINDS) -> Channel:
    """A random session channel: a room from the pool (or none, ``dry_fraction``), a noise kind and
    SNR, a microphone, a telephone band on ``telephone_fraction`` of sessions, a level."""
    dry = num_rirs == 0 or rng.random() < dry_fraction
    telephone = bool(rng.random() < telephone_fraction)
    return Channel(
        rir=-1 if dry else int(rng.integers(num_rirs)),
        noise=str(noise_kinds[int(rng.integers(len(noise_kinds)))]),
        snr_db=round(float(rng.uniform(*snr_db)), 2),
        highpass_hz=round(float(np.exp(rng.uniform(np.log(40.0), np.log(250.0)))), 1),
        resonance_hz=round(float(rng.uniform(1500.0, 5000.0)), 1),
        resonance_db=round(float(rng.uniform(0.0, 8.0)), 2),
        lowpass_hz=round(float(rng.uniform(4500.0, 7800.0)), 1),
        telephone=telephone,
        gain_db=round(float(rng.uniform(-12.0, 0.0)), 2),
    )


# ---------------------------------------------------------------------------------------------
# Rooms


@dataclass(frozen=True)
class Room:
    """A shoebox room and the positions in it (metres), with the RT60 it was designed for."""

    dims: tuple[float, float, float]
    rt60: float
    source: tuple[float, float, float]
    mic: tuple[float, float, float]


def sabine_absorption(dims: Sequence[float], rt60: float, c: float = 343.0) -> float:
    """The wall energy absorption Sabine's formula needs for ``rt60`` in a shoebox of ``dims``
    (24 ln 10 V / (c S RT60)); a value of 1 or more cannot be built (pyroomacoustics refuses)."""
    lx, ly, lz = dims
    volume, surface = lx * ly * lz, 2 * (lx * ly + lx * lz + ly * lz)
    return 24 * np.log(10) * volume / (c * surface * rt60)


def draw_room(rng: np.random.Generator, rt60: tuple[float, float] = (0.15, 0.7)) -> Room:
    """A room 3-10 x 2.5-8 x 2.4-4 m with a target RT60 it can have (absorption below 0.95 by
    Sabine), a talker and a microphone 0.3-3 m apart, both at least 0.4 m from every wall."""
    while True:
        dims = (float(rng.uniform(3.0, 10.0)), float(rng.uniform(2.5, 8.0)), float(rng.uniform(2.4, 4.0)))
        target = float(rng.uniform(*rt60))
        if sabine_absorption(dims, round(target, 3)) >= 0.95:  # a large room cannot be that dry
            continue
        margin = 0.4
        src = tuple(float(rng.uniform(margin, d - margin)) for d in dims[:2]) + (float(rng.uniform(1.1, 1.8)),)
        mic = tuple(float(rng.uniform(margin, d - margin)) for d in dims[:2]) + (float(rng.uniform(0.7, 1.6)),)
        dist = float(np.linalg.norm(np.subtract(src, mic)))
        if 0.3 <= dist <= 3.0:
            return Room(tuple(round(d, 3) for d in dims), round(target, 3),  # type: ignore[arg-type]
                        tuple(round(x, 3) for x in src), tuple(round(x, 3) for x in mic))  # type: ignore[arg-type]


def simulate_rir(room: Room, max_order: int = 60) -> np.ndarray:
    """The room's impulse response at 16 kHz (pyroomacoustics image-source model; wall absorption
    from Sabine's formula for the room's RT60, reflection order capped at ``max_order``), direct
    path at sample 0, at most :data:`MAX_RIR_SECONDS` long, unit energy, float32."""
    from jooci.extras import require

    pra = require("pyroomacoustics")
    absorption, order = pra.inverse_sabine(room.rt60, list(room.dims))
    shoebox = pra.ShoeBox(list(room.dims), fs=SAMPLE_RATE, materials=pra.Material(absorption),
                          max_order=min(int(order), max_order), air_absorption=False)
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(list(room.mic))
    shoebox.compute_rir()
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    h = h[int(np.argmax(np.abs(h))):][: int(MAX_RIR_SECONDS * SAMPLE_RATE)]
    return (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)


def room_impulse_responses(n: int, seed: int, rt60: tuple[float, float] = (0.15, 0.7)) -> tuple[list[Room], list[np.ndarray]]:
    """``n`` rooms drawn from ``seed`` and their impulse responses (a corpus's pool)."""
    rng = np.random.default_rng([seed, 0x700D])
    rooms = [draw_room(rng, rt60) for _ in range(n)]
    return rooms, [simulate_rir(r) for r in rooms]


# ---------------------------------------------------------------------------------------------
# Noise


def coloured_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-variance Gaussian noise whose power spectrum falls as 1/f^a (white a=0,
    pink a=1, brown a=2), shaped in the frequency domain; DC set to 0."""
    if kind not in _NOISE_EXPONENT:
        raise ChannelError(f"unknown noise kind {kind!r}; choose one of {', '.join(_NOISE_EXPONENT)}")
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    else:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        scale = np.zeros_like(f)
        scale[1:] = f[1:] ** (-_NOISE_EXPONENT[kind] / 2)
        x = np.fft.irfft(spec * scale, n)
    x = x - x.mean()
    return x / max(np.std(x), 1e-12)


def babble(sources: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """The sum of ``sources`` (other talkers), each looped to ``n`` samples from a random offset and
    scaled to unit power first, so each talker is as loud as the others."""
    if not sources:
        raise ChannelError("babble noise needs at least one other talker")
    out = np.zeros(n)
    for s in sources:
        s = np.asarray(s, dtype=np.float64)
        if s.size == 0 or not np.any(s):
            continue
        reps = int(np.ceil((n + s.size) / s.size))
        start = int(rng.integers(s.size))
        seg = np.tile(s, reps)[start:start + n]
        out += seg / np.sqrt(np.mean(seg ** 2) + 1e-20)
    return out


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` with ``g`` such that the power ratio of signal to added noise over the
    whole utterance is ``snr_db``."""
    ps, pn = float(np.mean(signal ** 2)), float(np.mean(noise ** 2))
    if ps == 0.0 or pn == 0.0:
        return signal.copy()
    return signal + noise * np.sqrt(ps / (pn * 10 ** (snr_db / 10)))


# ---------------------------------------------------------------------------------------------
# Microphone and band


def microphone(x: np.ndarray, ch: Channel) -> np.ndarray:
    """High-pass roll-off (2nd-order Butterworth), presence peak (``iirpeak`` at Q 1.5, added at
    ``resonance_db``), low-pass (4th-order Butterworth; not on a telephone channel, whose band
    decides)."""
    y = sosfilt(butter(2, ch.highpass_hz, "highpass", fs=SAMPLE_RATE, output="sos"), x)
    if ch.resonance_db > 0:
        b, a = iirpeak(ch.resonance_hz, 1.5, fs=SAMPLE_RATE)
        y = y + (10 ** (ch.resonance_db / 20) - 1) * lfilter(b, a, y)
    if not ch.telephone:
        y = sosfilt(butter(4, ch.lowpass_hz, "lowpass", fs=SAMPLE_RATE, output="sos"), y)
    return y


def mu_law(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """G.711-style mu-law companding: compress, quantise to ``bits``, expand; input in [-1, 1]."""
    x = np.clip(x, -1.0, 1.0)
    c = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    levels = 2 ** bits
    code = np.clip(np.floor((c + 1.0) / 2.0 * levels), 0, levels - 1)  # 2^bits codes (mid-rise)
    q = (code + 0.5) / levels * 2.0 - 1.0
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(MU)) / MU


def telephone(x: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz, 300-3400 Hz band-pass (4th-order Butterworth), mu-law, back to 16 kHz."""
    narrow = resample_poly(x, 1, 2)
    narrow = sosfilt(butter(4, TELEPHONE_BAND, "bandpass", fs=SAMPLE_RATE // 2, output="sos"), narrow)
    peak = float(np.max(np.abs(narrow))) if narrow.size else 0.0
    scale = 0.9 / peak if peak > 0.9 else 1.0  # the codec's input range; the level is restored below
    wide = resample_poly(mu_law(narrow * scale) / scale, 2, 1)[: x.size]
    return np.pad(wide, (0, x.size - wide.size))


# ---------------------------------------------------------------------------------------------
# The chain


def apply_channel(wav: np.ndarray, ch: Channel, rirs: Sequence[np.ndarray], rng: np.random.Generator,
                  babble_sources: Sequence[np.ndarray] = ()) -> np.ndarray:
    """A clean 16 kHz utterance as recorded through ``ch`` (module docstring), float64, the same
    length. ``rng`` draws the noise; ``babble_sources`` are the other talkers of babble noise.

    Raises:
        ChannelError: an unknown noise kind, babble without sources, a room index out of the pool.
    """
    x = np.asarray(wav, dtype=np.float64)
    n = x.size
    if ch.rir >= 0:
        if ch.rir >= len(rirs):
            raise ChannelError(f"room {ch.rir} is not in the pool of {len(rirs)} impulse responses")
        x = fftconvolve(x, np.asarray(rirs[ch.rir], dtype=np.float64))[:n]
    if ch.noise == "babble":
        noise = babble(babble_sources, n, rng)
    elif ch.noise in _NOISE_EXPONENT:
        noise = coloured_noise(n, ch.noise, rng)
    else:
        raise ChannelError(f"unknown noise kind {ch.noise!r}; choose one of {', '.join(NOISE_KINDS)}")
    x = mix_at_snr(x, noise, ch.snr_db)
    x = microphone(x, ch)
    peak = float(np.max(np.abs(x))) if n else 0.0
    if peak > 0:
        x = x * (0.5 / peak)  # a common level before the band and the gain
    if ch.telephone:
        x = telephone(x)
    x = x * 10 ** (ch.gain_db / 20)
    peak = float(np.max(np.abs(x))) if n else 0.0
    return x * (0.95 / peak) if peak > 0.95 else x


__all__ = ["Channel", "ChannelError", "NOISE_KINDS", "Room", "apply_channel", "babble", "coloured_noise",
           "draw_channel", "draw_room", "microphone", "mix_at_snr", "mu_law", "room_impulse_responses",
           "sabine_absorption", "simulate_rir", "telephone"]
