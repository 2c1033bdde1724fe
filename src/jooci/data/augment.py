"""Waveform augmentations for the speaker views (RDINO augments every view differently, so that
two views of an utterance share the speaker and little else).

Functions of a padded batch, its lengths and an explicit ``torch.Generator`` (the training step's,
seeded by (seed, step, rank), so a resumed run draws the same augmentations): reverberation, then
additive noise at a random SNR, then a random gain, each reverb/noise applied to an item with its
probability. Noise and impulse responses come from one of two sources, chosen per kind:

- **Real recordings**, when :class:`AugmentConfig` names the folders (``noise_dir``: a MUSAN root,
  ``musan/{noise,music,speech}/<source>/*.wav``; ``rir_dir``: a RIRS_NOISES root, whose
  ``simulated_rirs/{small,medium,large}room/RoomNNN/*.wav`` are used, or any folder of RIR
  ``*.wav`` files). This is RDINO's recipe (3D-Speaker ``speakerlab/dataset/dataset_rdino.py``):
  a noise category drawn uniformly among noise / music / speech, a file uniformly within it, a
  random segment of it, at a per-category SNR (noise 0-15 dB, music 5-15 dB, speech 13-20 dB: one
  speech file, no babble); the RIR is convolved causally. Where RDINO leaves things implicit this
  module follows other recipes, named where it does so: the RIR is normalised by its energy
  (3D-Speaker ``speakerlab/process/augmentation.py`` ``addreverb``) and the output is aligned to
  the RIR's direct path, its largest tap (Kaldi ``reverberate_data_dir.py --shift-output``,
  SpeechBrain ``AddReverb``), so reverberation does not shift the speech; a noise file shorter than
  the view is repeated (3D-Speaker ``addnoise``) rather than zero-padded (RDINO's ``fill_split``).
  The files are indexed once per process (sorted paths: the same index on every rank and run).
- **Synthetic** (the default, and each kind's fallback when its folder is not given): Gaussian
  noise at ``snr_db`` and an exponentially decaying noise impulse response of RT60 in ``rt60``.
  Configs without folders give bit-for-bit the outputs they always gave.

Bad files never stop a run: a noise file whose header cannot be read is left out of the index, and
a noise or RIR file that fails to read during training leaves that view dry for that draw; both are
counted (:attr:`SoundBank.bad`) and logged once per file with the reason. A folder that is missing
or holds no usable file is an :class:`AugmentError` naming it.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from jooci.audio import SAMPLE_RATE, AudioError, audio_info, resample, resampled_length

log = logging.getLogger(__name__)

MUSAN_CATEGORIES = ("noise", "music", "speech")
"""MUSAN's top-level folders, each a noise category with its own SNR range."""

_SHOWN = 5  # file names spelled out in a log line before summarising


class AugmentError(ValueError):
    """A noise or RIR folder that cannot be used. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AugmentConfig:
    """Each augmentation is applied to an item with its probability."""

    gain_db: tuple[float, float] = (-6.0, 6.0)
    noise_prob: float = 0.6
    snr_db: tuple[float, float] = (5.0, 20.0)  # synthetic (Gaussian) noise
    reverb_prob: float = 0.4
    rt60: tuple[float, float] = (0.2, 0.8)  # seconds, synthetic impulse responses
    sample_rate: int = SAMPLE_RATE
    # Real noise and impulse responses (relative paths: from the CWD); None: synthetic ones.
    noise_dir: str | None = None  # MUSAN root: noise/, music/, speech/ below it
    rir_dir: str | None = None  # RIRS_NOISES root (its simulated_rirs/), or a folder of RIR .wav files
    # SNR per MUSAN category (RDINO: 3D-Speaker speakerlab/dataset/dataset_rdino.py `noisesnr`)
    noise_snr_db: tuple[float, float] = (0.0, 15.0)
    music_snr_db: tuple[float, float] = (5.0, 15.0)
    speech_snr_db: tuple[float, float] = (13.0, 20.0)

    def category_snr_db(self, category: str) -> tuple[float, float]:
        """The SNR range (dB) of a MUSAN category."""
        return getattr(self, f"{category}_snr_db")


def causal_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Each row of ``x`` (B, S) convolved with its own impulse response ``h`` (B, N), the first S
    samples: ``y[t] = sum_k h[k] x[t - k]``. Through the FFT: a 0.8 s response is 12,800 taps, which
    a direct convolution pays for at every output sample (~40x slower on a CPU for 3 s views)."""
    s = x.shape[1]
    size = 1 << (s + h.shape[1] - 2).bit_length()  # a power of two >= S + N - 1: no wrap-around
    spec = torch.fft.rfft(x.float(), size) * torch.fft.rfft(h.float(), size)
    return torch.fft.irfft(spec, size)[:, :s].to(x.dtype)


# ---------------------------------------------------------------------------------------------
# Folders of real noise and impulse responses


@dataclass(frozen=True)
class SoundFile:
    path: str
    category: str  # a MUSAN category for noise, "rir" for impulse responses


class SoundBank:
    """Indexed sound files (sorted), read on demand; files that fail are counted in ``bad``."""

    def __init__(self, files: list[SoundFile], sample_rate: int):
        self.files = files
        self.sample_rate = sample_rate
        self.bad: dict[str, str] = {}
        """path -> reason, for every file that failed (at indexing or when read)."""

    def _failed(self, path: str, reason: str) -> None:
        if path not in self.bad:
            self.bad[path] = reason
            log.warning("%s: %s; skipped (%d bad augmentation file(s) so far)", path, reason, len(self.bad))

    def _read(self, path: str, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int] | None:
        """The first channel of ``frames`` frames from ``start`` (float32) and the file's rate;
        None if the file fails (counted and logged)."""
        if path in self.bad:
            return None
        try:
            data, rate = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
            self._failed(path, f"unreadable or corrupt audio ({str(e).strip()[:200] or type(e).__name__})")
            return None
        if data.shape[0] == 0 or (frames > 0 and data.shape[0] < frames):
            self._failed(path, f"truncated: {data.shape[0]} of {frames if frames > 0 else 'some'} samples read")
            return None
        if not np.isfinite(data).all():
            self._failed(path, "NaN/Inf samples")
            return None
        return data[:, 0], int(rate)  # RDINO takes the first channel too


@dataclass(frozen=True)
class NoiseDraw:
    """One view's noise: a file of :attr:`NoiseBank.files`, where its segment starts (in the file's
    samples) and the SNR (dB) it is added at."""

    file: int
    offset: int
    snr_db: float


class NoiseBank(SoundBank):
    """MUSAN's files by category, headers read once (for the lengths the offsets are drawn from)."""

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE):
        root = Path(root)
        if not root.is_dir():
            raise AugmentError(root, "noise folder (losses.augment.noise_dir) not found")
        present = [c for c in MUSAN_CATEGORIES if (root / c).is_dir()]
        if not present:
            folders = ", ".join(f"{c}/" for c in MUSAN_CATEGORIES)
            raise AugmentError(root, f"not a MUSAN folder: none of {folders} in it")
        super().__init__([], sample_rate)
        self.root = root
        self.num_samples: list[int] = []  # per file, at its own rate
        self.rates: list[int] = []
        self.by_category: dict[str, list[int]] = {}
        for category in present:
            for path in sorted((root / category).rglob("*.wav")):
                try:
                    info = audio_info(path)
                    if info.num_samples == 0:
                        raise AudioError(path, "empty audio (0 samples)")
                except AudioError as e:
                    self._failed(e.path, e.reason)
                    continue
                self.by_category.setdefault(category, []).append(len(self.files))
                self.files.append(SoundFile(str(path), category))
                self.num_samples.append(info.num_samples)
                self.rates.append(info.sample_rate)
        if not self.files:
            raise AugmentError(root, f"no readable .wav file in {', '.join(f'{c}/' for c in present)}")
        self.categories = list(self.by_category)
        log.info("noise: %d MUSAN files in %s (%s)%s", len(self.files), root,
                 ", ".join(f"{c} {len(self.by_category[c])}" for c in self.categories),
                 f", {len(self.bad)} unreadable skipped" if self.bad else "")

    def draw(self, lengths: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> list[NoiseDraw | None]:
        """Per view (``lengths``: its samples at ``cfg.sample_rate``), with ``cfg.noise_prob``: a
        category uniformly, a file uniformly within it, a segment start uniformly, an SNR uniformly
        in the category's range. Always consumes the same random numbers for a batch size."""
        b = len(lengths)
        use, pick_category, pick_file, pick_offset, pick_snr = (torch.rand(b, generator=generator).tolist()
                                                                for _ in range(5))
        draws: list[NoiseDraw | None] = []
        for i, n in enumerate(lengths.tolist()):
            if not use[i] < cfg.noise_prob:
                draws.append(None)
                continue
            category = self.categories[min(int(pick_category[i] * len(self.categories)), len(self.categories) - 1)]
            files = self.by_category[category]
            f = files[min(int(pick_file[i] * len(files)), len(files) - 1)]
            room = max(0, self.num_samples[f] - resampled_length(n, cfg.sample_rate, self.rates[f]))
            lo, hi = cfg.category_snr_db(category)
            draws.append(NoiseDraw(f, min(int(pick_offset[i] * (room + 1)), room), lo + (hi - lo) * pick_snr[i]))
        return draws

    def segment(self, draw: NoiseDraw, length: int) -> np.ndarray | None:
        """``length`` samples at the bank's rate from the drawn file and offset (a file shorter than
        that is repeated); None if the file fails."""
        f = draw.file
        rate = self.rates[f]
        need = min(resampled_length(length, self.sample_rate, rate), self.num_samples[f] - draw.offset)
        got = self._read(self.files[f].path, draw.offset, need)
        if got is None:
            return None
        wav = resample(got[0], rate, self.sample_rate)
        return np.resize(wav, length) if wav.shape[0] < length else wav[:length]


class RirBank(SoundBank):
    """Room impulse responses: RIRS_NOISES's simulated ones, or every ``.wav`` below a folder. Only
    the paths are indexed (RIRS_NOISES has 60,000); a file is read when drawn."""

    def __init__(self, root: str | Path, sample_rate: int = SAMPLE_RATE):
        root = Path(root)
        if not root.is_dir():
            raise AugmentError(root, "RIR folder (losses.augment.rir_dir) not found")
        if (root / "simulated_rirs").is_dir():  # a RIRS_NOISES root: its real_rirs_isotropic_noises/
            # mixes RIRs with noise recordings, and pointsource_noises/ holds noises only
            paths = sorted((root / "simulated_rirs").glob("*/*/*.wav"))
        else:
            paths = sorted(root.rglob("*.wav"))
        if not paths:
            raise AugmentError(root, "no .wav impulse response in it")
        super().__init__([SoundFile(str(p), "rir") for p in paths], sample_rate)
        self.root = root
        log.info("reverb: %d impulse responses in %s", len(paths), root)

    def draw(self, b: int, cfg: AugmentConfig, generator: torch.Generator) -> list[int | None]:
        """Per view, with ``cfg.reverb_prob``, a RIR uniformly (its index in ``files``)."""
        use, pick = (torch.rand(b, generator=generator).tolist() for _ in range(2))
        n = len(self.files)
        return [min(int(p * n), n - 1) if u < cfg.reverb_prob else None for u, p in zip(use, pick)]

    def response(self, index: int) -> tuple[np.ndarray, int] | None:
        """RIR ``index`` at the bank's rate, divided by its energy (sqrt of the sum of squares), and
        the position of its direct path (its largest tap); None if the file fails."""
        path = self.files[index].path
        got = self._read(path)
        if got is None:
            return None
        h = resample(got[0], got[1], self.sample_rate).astype(np.float64)
        energy = math.sqrt(float(np.sum(h * h)))
        if energy == 0.0:
            self._failed(path, "silent impulse response (all samples 0)")
            return None
        return (h / energy).astype(np.float32), int(np.argmax(np.abs(h)))


@dataclass
class SoundFolders:
    """The banks of one config's folders (None where the folder is not given)."""

    noise: NoiseBank | None
    rirs: RirBank | None


@functools.lru_cache(maxsize=8)
def _sound_folders(noise_dir: str | None, rir_dir: str | None, sample_rate: int) -> SoundFolders:
    return SoundFolders(None if noise_dir is None else NoiseBank(noise_dir, sample_rate),
                        None if rir_dir is None else RirBank(rir_dir, sample_rate))


def sound_folders(cfg: AugmentConfig) -> SoundFolders | None:
    """The indexed folders of ``cfg`` (built on the first call, then shared by the process), or
    None when it names none. Call it before training to index (and check) the folders up front.

    Raises:
        AugmentError: a folder is missing or holds no usable file.
    """
    if cfg.noise_dir is None and cfg.rir_dir is None:
        return None
    return _sound_folders(cfg.noise_dir, cfg.rir_dir, cfg.sample_rate)


# ---------------------------------------------------------------------------------------------
# The augmentation


def augment(waveforms: torch.Tensor, lengths: torch.Tensor, cfg: AugmentConfig, *,
            generator: torch.Generator) -> torch.Tensor:
    """(B, S) padded audio -> (B, S) augmented audio, zero after each length."""
    b, s = waveforms.shape
    dev = waveforms.device
    valid = (torch.arange(s, device=dev)[None, :] < lengths[:, None].to(dev)).to(waveforms.dtype)
    folders = sound_folders(cfg)
    x = waveforms
    if cfg.reverb_prob > 0:
        if folders is not None and folders.rirs is not None:
            x = _real_reverb(x, folders.rirs.draw(b, cfg, generator), folders.rirs)
        else:
            x = _synthetic_reverb(x, cfg, generator)
    if cfg.noise_prob > 0:
        if folders is not None and folders.noise is not None:
            x = _real_noise(x, valid, lengths, folders.noise.draw(lengths.cpu(), cfg, generator), folders.noise)
        else:
            x = _synthetic_noise(x, valid, cfg, generator)
    gain = 10 ** ((cfg.gain_db[0] + (cfg.gain_db[1] - cfg.gain_db[0]) * _uniform(b, generator, dev)) / 20)
    return x * gain[:, None] * valid


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator).to(device)


def _synthetic_reverb(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Exponentially decaying Gaussian noise as the impulse response, RT60 uniform in ``cfg.rt60``."""
    b, dev = x.shape[0], x.device
    rt60 = cfg.rt60[0] + (cfg.rt60[1] - cfg.rt60[0]) * _uniform(b, generator, dev)
    n = int(cfg.rt60[1] * cfg.sample_rate)
    t = torch.arange(n, device=dev)[None, :] / cfg.sample_rate
    rir = torch.randn(b, n, generator=generator).to(dev) * torch.exp(-6.9 * t / rt60[:, None])
    rir[:, 0] = 1.0  # the direct path
    rir = rir / rir.norm(dim=1, keepdim=True)
    wet = causal_convolve(x, rir)
    use = (_uniform(b, generator, dev) < cfg.reverb_prob).to(x.dtype)[:, None]
    return use * wet + (1 - use) * x


def _synthetic_noise(x: torch.Tensor, valid: torch.Tensor, cfg: AugmentConfig,
                     generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise at an SNR uniform in ``cfg.snr_db``."""
    (b, s), dev = x.shape, x.device
    snr = cfg.snr_db[0] + (cfg.snr_db[1] - cfg.snr_db[0]) * _uniform(b, generator, dev)
    power = (x.pow(2) * valid).sum(1) / valid.sum(1).clamp(min=1)
    noise = torch.randn(b, s, generator=generator).to(dev)
    scale = torch.sqrt(power / 10 ** (snr / 10))
    use = (_uniform(b, generator, dev) < cfg.noise_prob).to(x.dtype)
    return x + (use * scale)[:, None] * noise


def _real_reverb(x: torch.Tensor, draws: list[int | None], bank: RirBank) -> torch.Tensor:
    """Rows with a drawn RIR convolved with it, aligned to its direct path: output sample t is
    sample t + d of the full convolution, d the direct path's position."""
    rows, responses, delays = [], [], []
    for i, index in enumerate(draws):
        got = None if index is None else bank.response(index)
        if got is not None:
            rows.append(i)
            responses.append(got[0])
            delays.append(got[1])
    if not rows:
        return x
    s, dev = x.shape[1], x.device
    h = torch.zeros(len(rows), max(len(r) for r in responses))
    for j, r in enumerate(responses):
        h[j, : len(r)] = torch.from_numpy(r)
    d = torch.tensor(delays, device=dev)
    wet = causal_convolve(torch.nn.functional.pad(x[rows], (0, int(d.max()))), h.to(dev))
    aligned = torch.gather(wet, 1, torch.arange(s, device=dev)[None, :] + d[:, None])
    out = x.clone()
    out[rows] = aligned
    return out


def _real_noise(x: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor, draws: list[NoiseDraw | None],
                bank: NoiseBank) -> torch.Tensor:
    """Each drawn segment added over its row's valid samples at its SNR (power of the audio over
    its length against the segment's)."""
    power = ((x.pow(2) * valid).sum(1) / valid.sum(1).clamp(min=1)).tolist()
    noise = np.zeros(tuple(x.shape), dtype=np.float32)
    for i, (draw, n) in enumerate(zip(draws, lengths.tolist())):
        segment = None if draw is None else bank.segment(draw, n)
        if segment is None:
            continue
        noise_power = float(np.mean(segment.astype(np.float64) ** 2))
        if noise_power > 0:
            noise[i, :n] = segment * math.sqrt(power[i] / (noise_power * 10 ** (draw.snr_db / 10)))
    return x + torch.from_numpy(noise).to(x.device, x.dtype)


__all__ = [
    "AugmentConfig", "AugmentError", "augment", "causal_convolve", "sound_folders", "SoundFolders",
    "NoiseBank", "RirBank", "NoiseDraw", "MUSAN_CATEGORIES",
]
