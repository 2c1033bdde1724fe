"""Kaldi-compatible MFCC (+delta, +delta-delta) and log-mel filterbank features, batched, in torch.

Why our own ~100 lines instead of importing lhotse's ``Wav2MFCC`` / ``Wav2LogFilterBank``: the
computation is short and fixed (Kaldi's), and ``import lhotse`` pulls its whole package (in lhotse
1.33 that needs ``urllib3``, which lhotse does not declare), so a runtime dependency would break
``jooci targets`` on a clean install for nothing. The test suite checks this module against
lhotse's layers (loaded without the package ``__init__``) to 1e-4.

Frame alignment (the decision that matters)
-------------------------------------------
The wav2vec2 CNN gives frame ``i`` from samples ``[320 i, 320 i + 400)``: ``floor((n - 400) / 320)
+ 1`` frames for ``n >= 400`` (:func:`num_frames`). Kaldi framing with ``snip_edges=True``, a 400-sample
(25 ms) window and a 160-sample (10 ms) hop gives 100 Hz frame ``j`` from ``[160 j, 160 j + 400)``,
so 100 Hz frame ``2 i`` covers *exactly* CNN frame ``i``'s samples, and the even 100 Hz frames are
exactly as many as the CNN frames. Hence:

* MFCC labels at 50 Hz: 13 MFCCs at 100 Hz, deltas and delta-deltas at 100 Hz (torchaudio's
  ``compute_deltas``, window 5, as fairseq's ``dump_mfcc_feature.py``), then the even frames. This
  is what HuBERT iteration 1 effectively trains on (fairseq reads 100 Hz labels at ``2 i`` for CNN
  frame ``i``), with deltas over +-20 ms as in HuBERT, not the +-40 ms a 20 ms hop would give.
* log-mel at 50 Hz (the reconstruction decoder's target) is the 20 ms-hop filterbank, which equals
  the even frames of the 100 Hz one; 100 Hz log-mel is the input of jooci's own RDINO teachers.

Settings are Kaldi's / torchaudio ``compliance.kaldi`` defaults, as fairseq's MFCC dump and
3D-Speaker's fbank use: povey window, pre-emphasis 0.97, DC removal, 512-point FFT, power
spectrum, mel bins from 20 Hz to Nyquist, float log floor, no dither, no energy; MFCC: 23 bins,
13 ceps, orthonormal DCT, lifter 22. Waveforms are float in [-1, 1] (not int16 scale, as fairseq).

:func:`rdino_log_mel` is another front-end: the torchaudio mel spectrogram 3D-Speaker trained its
RDINO on (centred, reflect-padded frames, Hann window, HTK mel from 0 Hz, ``log(x + 1e-6)`` of
int16-scale audio), for imported RDINO teachers (``SpeakerEncoderConfig.frontend``). The test
suite checks it against a numpy computation from its definition to 1e-4.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from jooci.audio import SAMPLE_RATE
WINDOW = 400
"""Analysis window in samples (25 ms): the CNN's receptive field."""
CNN_STRIDE = 320
"""The CNN's hop in samples (20 ms): 50 Hz frames."""
N_FFT = 512
_LOG_FLOOR = torch.finfo(torch.float32).eps


def hop_length(rate: int) -> int:
    """Hop in samples for a frame rate of ``rate`` Hz at 16 kHz (50 -> 320, 100 -> 160)."""
    if rate not in (50, 100):
        raise ValueError(f"frame rate must be 50 or 100 Hz, got {rate}")
    return SAMPLE_RATE // rate


def num_frames(num_samples: int, rate: int = 50) -> int:
    """Frames from ``num_samples`` samples at 16 kHz: the CNN's count at 50 Hz
    (``floor((n - 400) / 320) + 1``, 0 below 400 samples); at 100 Hz the Kaldi ``snip_edges`` count."""
    if num_samples < WINDOW:
        return 0
    return (num_samples - WINDOW) // hop_length(rate) + 1


def frame_lengths(lengths: torch.Tensor, rate: int = 50) -> torch.Tensor:
    """:func:`num_frames` of each length: ``(B,)`` -> ``(B,)`` long."""
    hop = hop_length(rate)
    lengths = lengths.long()
    return torch.where(lengths < WINDOW, torch.zeros_like(lengths), (lengths - WINDOW) // hop + 1)


# ---------------------------------------------------------------------------------------------
# Constant matrices (built once per setting)


def _mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


@functools.lru_cache(maxsize=16)
def _mel_banks(num_bins: int, low_freq: float, high_freq: float) -> torch.Tensor:
    """Kaldi's triangular mel filters, ``(N_FFT // 2 + 1, num_bins)`` (the Nyquist row is 0)."""
    nyquist = SAMPLE_RATE / 2
    if high_freq <= 0:
        high_freq += nyquist
    if not 0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"bad mel range: low_freq {low_freq}, high_freq {high_freq}")
    lo, hi = _mel(torch.tensor(low_freq, dtype=torch.float64)), _mel(torch.tensor(high_freq, dtype=torch.float64))
    delta = (hi - lo) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64)[:, None]
    left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    mel = _mel(torch.arange(N_FFT // 2, dtype=torch.float64) * SAMPLE_RATE / N_FFT)[None, :]
    w = torch.clamp(torch.minimum((mel - left) / (center - left), (right - mel) / (right - center)), min=0.0)
    return F.pad(w, (0, 1)).T.float().contiguous()


@functools.lru_cache(maxsize=4)
def _window() -> torch.Tensor:
    return torch.hann_window(WINDOW, periodic=False, dtype=torch.float64).pow(0.85).float()


@functools.lru_cache(maxsize=4)
def _dct_lifter(num_ceps: int, num_bins: int, lifter: float) -> torch.Tensor:
    """Orthonormal DCT-II ``(num_bins, num_ceps)`` with the cepstral lifter folded in."""
    n = torch.arange(num_bins, dtype=torch.float64)[:, None]
    k = torch.arange(num_ceps, dtype=torch.float64)[None, :]
    dct = torch.cos(math.pi / num_bins * (n + 0.5) * k) * math.sqrt(2.0 / num_bins)
    dct[:, 0] /= math.sqrt(2.0)
    if lifter > 0:
        dct = dct * (1 + 0.5 * lifter * torch.sin(math.pi * torch.arange(num_ceps, dtype=torch.float64) / lifter))
    return dct.float()


# ---------------------------------------------------------------------------------------------
# Features


def _log_mel_frames(waveforms: torch.Tensor, hop: int, num_bins: int, low_freq: float, high_freq: float) -> torch.Tensor:
    """(B, S) -> (B, T, num_bins) log mel energies, T = frames of the full padded width."""
    if waveforms.shape[1] < WINDOW:
        return waveforms.new_zeros(waveforms.shape[0], 0, num_bins)
    frames = waveforms.float().unfold(1, WINDOW, hop)  # (B, T, 400), a view
    frames = frames - frames.mean(dim=-1, keepdim=True)  # DC removal per frame
    prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)  # Kaldi: x[-1] := x[0]
    frames = (frames - 0.97 * prev) * _window().to(frames.device)
    spec = torch.fft.rfft(frames, n=N_FFT).abs().pow(2)  # (B, T, 257) power spectrum
    mel = spec @ _mel_banks(num_bins, low_freq, high_freq).to(frames.device)
    return torch.clamp(mel, min=_LOG_FLOOR).log()


def _mask_padding(x: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
    keep = torch.arange(x.shape[1], device=x.device)[None, :] < n_frames[:, None].to(x.device)
    return x * keep[..., None]


def _tmax(n: torch.Tensor) -> int:
    return int(n.max()) if len(n) else 0


def _check(waveforms: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if waveforms.dim() != 2:
        raise ValueError(f"waveforms must be (B, S), got {tuple(waveforms.shape)}")
    if lengths is None:
        return torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
    if lengths.shape != (waveforms.shape[0],) or bool((lengths > waveforms.shape[1]).any()):
        raise ValueError(f"lengths {tuple(lengths.shape)} must be (B,) and at most S = {waveforms.shape[1]}")
    return lengths.long().cpu()


@torch.no_grad()
def log_mel(
    waveforms: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    rate: int = 100,
    num_mel_bins: int = 80,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi log-mel filterbank energies.

    Args:
        waveforms: ``(B, S)`` float at 16 kHz, padded.
        lengths: ``(B,)`` valid samples (None: all S).
        rate: 100 (10 ms hop, the RDINO teacher's input) or 50 (20 ms hop, CNN-aligned).
        num_mel_bins: 80.
        low_freq, high_freq: filter range in Hz; ``high_freq <= 0`` is relative to Nyquist.

    Returns:
        ``(B, T, num_mel_bins)`` (zero at padding frames) and ``(B,)`` frame counts
        (:func:`num_frames` of each length). Valid frames do not depend on the padding.
    """
    lengths = _check(waveforms, lengths)
    n = frame_lengths(lengths, rate)
    x = _log_mel_frames(waveforms, hop_length(rate), num_mel_bins, low_freq, high_freq)
    return _mask_padding(x[:, : _tmax(n)], n), n


def deltas(x: torch.Tensor, lengths: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Regression deltas along time (torchaudio ``compute_deltas``), each row's edges replicated
    at its own last valid frame, so padding never leaks in.

    Args:
        x: ``(B, T, D)``; lengths: ``(B,)`` valid frames.

    Returns:
        ``(B, T, D)``.
    """
    half = (window - 1) // 2
    denom = half * (half + 1) * (2 * half + 1) / 3  # = 2 * sum n^2
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    last = (lengths.to(x.device).long() - 1).clamp(min=0)[:, None]
    out = torch.zeros_like(x)
    for k in range(1, half + 1):
        fwd = torch.minimum((t + k).expand(x.shape[0], -1), last)
        bwd = (t - k).clamp(min=0).expand(x.shape[0], -1)
        bwd = torch.minimum(bwd, last)
        gather = lambda idx: torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))  # noqa: E731
        out = out + k * (gather(fwd) - gather(bwd))
    return out / denom


@torch.no_grad()
def mfcc(
    waveforms: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    rate: int = 50,
    with_deltas: bool = True,
    num_ceps: int = 13,
    num_mel_bins: int = 23,
    cepstral_lifter: float = 22.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi MFCC, by default with deltas and delta-deltas (39-d): the HuBERT iteration-1 features.

    Computed at 100 Hz (deltas included); at ``rate=50`` the even frames are returned, which line
    up exactly with the CNN's frames (see the module docstring).

    Args:
        waveforms: ``(B, S)`` float at 16 kHz, padded.
        lengths: ``(B,)`` valid samples (None: all S).
        rate: 50 (CNN-aligned) or 100.
        with_deltas: append delta and delta-delta (``3 * num_ceps`` dims).

    Returns:
        ``(B, T, 39)`` (zero at padding frames) and ``(B,)`` frame counts, ``num_frames(len, rate)``.
    """
    lengths = _check(waveforms, lengths)
    n100 = frame_lengths(lengths, 100)
    x = _log_mel_frames(waveforms, hop_length(100), num_mel_bins, low_freq, high_freq)
    x = x[:, : _tmax(n100)]
    c = x @ _dct_lifter(num_ceps, num_mel_bins, cepstral_lifter).to(x.device)
    if with_deltas:
        d1 = deltas(c, n100)
        c = torch.cat([c, d1, deltas(d1, n100)], dim=-1)
    if rate == 50:
        c = c[:, ::2]
    n = frame_lengths(lengths, rate)
    return _mask_padding(c[:, : _tmax(n)], n), n


# ---------------------------------------------------------------------------------------------
# 3D-Speaker's RDINO front-end (what an imported RDINO teacher was trained on; method.md T33)
#
# speakerlab/dataset/dataset_rdino.py (training) and speakerlab/bin/infer_sv_rdino.py build a
# torchaudio ``MelSpectrogram(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
# f_min=0, f_max=8000, pad=0, n_mels=80)`` with the remaining defaults: periodic Hann window of
# 400 zero-padded to 512 (centred in it), ``center=True`` with reflect padding of n_fft // 2,
# power 2, HTK mel scale, no filter normalisation, no pre-emphasis, no DC removal. The model
# (speakerlab/models/rdino/ECAPA_TDNN.py) then takes ``log(x + 1e-6)`` and an InstanceNorm1d;
# the instance norm is the speaker encoder's (``instance_norm``), the log is here. Training reads
# the wavs with scipy's ``wavfile.read``: int16 values, so the waveform is scaled by 32768.

RDINO_HOP = 160
RDINO_SCALE = 32768.0
"""The waveform scale of 3D-Speaker's RDINO training (int16 samples, scipy ``wavfile.read``)."""
RDINO_LOG_OFFSET = 1e-6


def rdino_frame_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames of the centred (``center=True``) framing: ``1 + n // 160`` for ``n >= 1`` samples,
    0 for an empty utterance. ``(B,)`` -> ``(B,)`` long. Frame ``j`` is centred on sample ``160 j``."""
    lengths = lengths.long()
    return torch.where(lengths > 0, lengths // RDINO_HOP + 1, torch.zeros_like(lengths))


def _htk_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


@functools.lru_cache(maxsize=16)
def _htk_mel_banks(num_bins: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, unnormalised (peak 1), ``(N_FFT // 2 + 1, num_bins)``:
    ``num_bins + 2`` edges equally spaced in mel from ``f_min`` to ``f_max``; filter ``m`` rises
    from edge ``m`` to ``m + 1`` and falls to ``m + 2``, evaluated at the FFT bins' frequencies."""
    if not 0 <= f_min < f_max <= SAMPLE_RATE / 2:
        raise ValueError(f"bad mel range: f_min {f_min}, f_max {f_max}")
    freqs = torch.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1, dtype=torch.float64)[:, None]
    lo, hi = _htk_mel(torch.tensor(f_min, dtype=torch.float64)), _htk_mel(torch.tensor(f_max, dtype=torch.float64))
    edges = 700.0 * (10.0 ** (torch.linspace(float(lo), float(hi), num_bins + 2, dtype=torch.float64) / 2595.0) - 1.0)
    left, center, right = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    w = torch.minimum((freqs - left) / (center - left), (right - freqs) / (right - center))
    return w.clamp(min=0.0).float().contiguous()


@functools.lru_cache(maxsize=4)
def _rdino_window() -> torch.Tensor:
    """Periodic Hann of 400, zero-padded on both sides to 512 (as ``torch.stft`` centres a short window)."""
    w = torch.hann_window(WINDOW, periodic=True, dtype=torch.float64)
    side = (N_FFT - WINDOW) // 2
    return F.pad(w, (side, N_FFT - WINDOW - side)).float()


def _reflect_padded(waveforms: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Each row's own ``[0, length)`` reflected (no edge repeat) ``N_FFT // 2`` samples beyond
    both ends, as ``torch.stft(center=True, pad_mode="reflect")``, ``width`` samples wide. Samples
    past a row's length are never read. Rows up to the pad's length (torch.stft refuses them) are
    reflected again at the other end (numpy's ``pad(mode="reflect")`` does the same)."""
    half = N_FFT // 2
    n = lengths.to(waveforms.device)[:, None]
    i = torch.arange(width, device=waveforms.device)[None, :] - half
    period = (2 * (n - 1)).clamp(min=1)
    r = torch.remainder(i, period)
    idx = torch.where(r < n, r, period - r).clamp(0, max(waveforms.shape[1] - 1, 0))
    return torch.gather(waveforms, 1, idx)


@torch.no_grad()
def rdino_log_mel(
    waveforms: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    num_mel_bins: int = 80,
    f_min: float = 0.0,
    f_max: float = 8000.0,
    scale: float = RDINO_SCALE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """3D-Speaker RDINO's input: ``log(mel_power + 1e-6)`` of a centred 512-point STFT (see the
    comment above; torchaudio ``MelSpectrogram`` with 3D-Speaker's arguments, in torch alone).

    Args:
        waveforms: ``(B, S)`` float at 16 kHz in [-1, 1], padded (multiplied by ``scale``
            first: 32768, the int16 range 3D-Speaker trained on; 1.0 is ``infer_sv_rdino``'s).
        lengths: ``(B,)`` valid samples (None: all S).
        num_mel_bins, f_min, f_max: 80 bands from 0 to 8000 Hz (HTK mel scale, no norm).

    Returns:
        ``(B, T, num_mel_bins)`` (zero at padding frames) and ``(B,)`` frame counts
        (:func:`rdino_frame_lengths`). Each row is reflect-padded at its own length, so valid
        frames do not depend on the padding.
    """
    lengths = _check(waveforms, lengths)
    n = rdino_frame_lengths(lengths)
    t = _tmax(n)
    if t == 0:
        return waveforms.new_zeros(waveforms.shape[0], 0, num_mel_bins, dtype=torch.float32), n
    x = _reflect_padded(waveforms.float() * scale, lengths, (t - 1) * RDINO_HOP + N_FFT)
    frames = x.unfold(1, N_FFT, RDINO_HOP) * _rdino_window().to(x.device)  # (B, T, 512)
    spec = torch.view_as_real(torch.fft.rfft(frames)).pow(2).sum(-1)  # (B, T, 257) power
    mel = spec @ _htk_mel_banks(num_mel_bins, f_min, f_max).to(x.device)
    return _mask_padding((mel + RDINO_LOG_OFFSET).log(), n), n


__all__ = ["CNN_STRIDE", "RDINO_SCALE", "SAMPLE_RATE", "WINDOW", "deltas", "frame_lengths", "hop_length", "log_mel",
           "mfcc", "num_frames", "rdino_frame_lengths", "rdino_log_mel"]
