"""The speaker model: RDINO's teacher architecture, ECAPA-TDNN on log-mel features.

Same blocks as the Other encoder (:mod:`jooci.models.res2net`), composed without appends and fed
log-mel frames instead of CNN frames. The model brings its own front-end
(:class:`SpeakerFrontend`, chosen by the config's ``encoder.frontend``, with ``encoder.n_mels``
bands at 100 Hz), so ``model(waveforms, lengths)`` takes 16 kHz audio;
:meth:`SpeakerModel.forward_features` takes ``(B, T, n_mels)`` frames directly.

Two front-ends (method.md T33):

* ``kaldi_fbank`` (default; jooci's own teachers): Kaldi log-mel, :func:`jooci.features.log_mel`.
* ``3dspeaker_rdino`` (what :func:`jooci.models.convert.rdino_from_3dspeaker` sets): the input
  3D-Speaker's RDINO was trained on, :func:`jooci.features.rdino_log_mel`: ``log(mel + 1e-6)`` of
  torchaudio's ``MelSpectrogram(16000, n_fft=512, win_length=400, hop_length=160, f_min=0,
  f_max=8000, n_mels=80)`` (periodic Hann, centred frames with reflect padding, power, HTK mel,
  no norm) of int16-scale audio (``speakerlab/dataset/dataset_rdino.py``; ``infer_sv_rdino`` feeds
  the same spectrogram of [-1, 1] audio). The model's ``log_input`` is that log; the encoder then
  applies the same per-utterance instance norm (``instance_norm``).

A teacher folder is a model folder (:mod:`jooci.models.folder`) of model_type ``speaker``; its
``model.safetensors`` also holds ``center``, the DINO centre the teacher finished with, when
one was saved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from jooci.configio import from_dict as config_from_dict, to_dict as config_to_dict
from jooci.features import frame_lengths, log_mel, rdino_frame_lengths, rdino_log_mel
from jooci.models._util import check_lengths, padding_mask
from jooci.models.folder import Pretrained
from jooci.models.heads import DINOHead, DINOHeadConfig, DINOHeadOutput
from jooci.models.outputs import FeatureOutput
from jooci.models.res2net import (
    EcapaConfig, EcapaPooling, TDNNBlock, build_se_res2net_blocks, masked_instance_norm, valid_mask)

FRAME_RATE = 100
"""The teacher's input frames per second (10 ms hop, both front-ends)."""

Frontend = Literal["kaldi_fbank", "3dspeaker_rdino"]


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    """ECAPA-TDNN on log-mel: RDINO's backbone (C=512, MFA 1536, 192-d embedding by default)."""

    n_mels: int = 80
    instance_norm: bool = True  # per-utterance mean/variance normalisation of the input (RDINO)
    # the waveform -> log-mel front-end (SpeakerFrontend): jooci's Kaldi fbank, or the torchaudio
    # mel spectrogram 3D-Speaker's RDINO was trained on (imported teachers, method.md T33)
    frontend: Frontend = "kaldi_fbank"
    ecapa: EcapaConfig = field(default_factory=lambda: EcapaConfig(channels=512, embed_dim=192))


@dataclass(frozen=True)
class SpeakerConfig:
    """The teacher: encoder + DINO head."""

    encoder: SpeakerEncoderConfig = field(default_factory=SpeakerEncoderConfig)
    head: DINOHeadConfig = field(default_factory=lambda: DINOHeadConfig(in_dim=192))

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeakerConfig:
        """Strict: unknown keys raise ConfigError naming them."""
        return config_from_dict(cls, d)


class SpeakerEncoder(nn.Module):
    """Log-mel (B, T, n_mels) -> utterance embedding (B, embed_dim)."""

    def __init__(self, cfg: SpeakerEncoderConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.ecapa
        self.tdnn = TDNNBlock(cfg.n_mels, e.channels, e.first_kernel, 1, e.padding_mode)
        self.blocks = build_se_res2net_blocks(e)
        self.pooling = EcapaPooling(e)

    def encode(self, features: Tensor, lengths: Tensor | None = None) -> tuple[list[Tensor], Tensor, Tensor]:
        """features: (B, T, n_mels) log-mel; lengths: (B,) valid frames. Returns the N block
        outputs (B, C, T), 0 at padding, the lengths and the (B, 1, T) valid-frame mask."""
        if features.dim() != 3 or features.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"features must be (batch, frames, {self.cfg.n_mels}), got {tuple(features.shape)}")
        lengths = check_lengths(features, lengths)
        valid = valid_mask(lengths, features.shape[1], features.dtype)
        x = features.transpose(1, 2) * valid
        if self.cfg.instance_norm:
            x = masked_instance_norm(x, valid)
        x = self.tdnn(x, lengths, valid)
        outs = []
        for block in self.blocks:
            x = block(x, lengths, valid)
            outs.append(x)
        return outs, lengths, valid

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """features: (B, T, n_mels) log-mel; lengths: (B,) valid frames. Returns (B, embed_dim)."""
        outs, lengths, valid = self.encode(features, lengths)
        return self.pooling(outs, lengths, valid)


class SpeakerFrontend(nn.Module):
    """Waveforms -> the teacher's input at 100 Hz with ``n_mels`` bands, 0 at padding frames.
    No parameters.

    ``kaldi_fbank``: Kaldi log-mel filterbank energies (:func:`jooci.features.log_mel`: 25 ms
    povey window, 10 ms hop, 512-point FFT, bands from 20 Hz to Nyquist), frame ``j`` from
    samples ``[160 j, 160 j + 400)``. ``3dspeaker_rdino``: 3D-Speaker RDINO's input
    (:func:`jooci.features.rdino_log_mel`), centred frames, frame ``j`` centred on sample ``160 j``."""

    def __init__(self, n_mels: int, kind: Frontend = "kaldi_fbank"):
        super().__init__()
        if kind not in ("kaldi_fbank", "3dspeaker_rdino"):
            raise ValueError(f"unknown speaker front-end {kind!r}; choose kaldi_fbank or 3dspeaker_rdino")
        self.n_mels = n_mels
        self.kind = kind

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) 100 Hz frame counts of this front-end's framing."""
        if self.kind == "3dspeaker_rdino":
            return rdino_frame_lengths(lengths)
        return frame_lengths(lengths, FRAME_RATE)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """waveforms: (B, S) float at 16 kHz; lengths: (B,) valid samples (None: all valid).
        Returns (B, T, n_mels) log-mel and (B,) frame counts, both on the waveforms' device."""
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (batch, samples), got shape {tuple(waveforms.shape)} "
                             "(log-mel frames go to SpeakerModel.forward_features)")
        if self.kind == "3dspeaker_rdino":
            mel, frames = rdino_log_mel(waveforms, lengths, num_mel_bins=self.n_mels)
        else:
            mel, frames = log_mel(waveforms, lengths, rate=FRAME_RATE, num_mel_bins=self.n_mels)
        return mel.to(waveforms.device), frames.to(waveforms.device)


@dataclass
class SpeakerOutput:
    """embedding: (B, embed_dim); head: the DINO head's outputs."""

    embedding: Tensor
    head: DINOHeadOutput


class SpeakerModel(Pretrained, nn.Module):
    """RDINO teacher (or its student while it is trained): front-end + encoder + DINO head."""

    model_type = "speaker"
    config_class = SpeakerConfig
    auxiliary_tensors = ("center",)

    def __init__(self, cfg: SpeakerConfig):
        super().__init__()
        if cfg.head.in_dim != cfg.encoder.ecapa.embed_dim:
            raise ValueError(f"head.in_dim {cfg.head.in_dim} != encoder embed_dim {cfg.encoder.ecapa.embed_dim}")
        self.cfg = cfg
        self.frontend = SpeakerFrontend(cfg.encoder.n_mels, cfg.encoder.frontend)
        self.encoder = SpeakerEncoder(cfg.encoder)
        self.head = DINOHead(cfg.head)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> SpeakerOutput:
        """waveforms: (B, S) 16 kHz audio, zero-padded; lengths: (B,) valid samples."""
        features, frames = self.frontend(waveforms, lengths)
        return self.forward_features(features, frames)

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> SpeakerOutput:
        """features: (B, T, n_mels) log-mel (what the front-end gives); lengths: (B,) valid frames."""
        emb = self.encoder(features, lengths)
        return SpeakerOutput(emb, self.head(emb))

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) frame counts of :meth:`extract_features` (50 Hz, the CNN's
        count, whichever front-end)."""
        return frame_lengths(lengths, 50)

    @property
    def num_hidden_states(self) -> int:
        """How many hidden states :meth:`extract_features` returns: one per SE-Res2Net block."""
        return self.cfg.encoder.ecapa.num_blocks

    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None) -> FeatureOutput:
        """The encoder's block outputs as hidden states (B, T, C) and its utterance embedding.

        The blocks run at 100 Hz; the states are every other frame, 50 Hz and as many as every
        other jooci upstream's (:meth:`frame_lengths`). Kaldi front-end: the even frames (100 Hz
        frame ``2 i`` covers exactly the samples of 50 Hz frame ``i``, see :mod:`jooci.features`).
        3D-Speaker front-end (centred frames): the odd ones, frame ``2 i + 1`` centred on sample
        ``320 i + 160``, 40 samples before the centre of CNN frame ``i``. Call ``model.eval()``
        first (BatchNorm). ``content_states`` is empty; ``other_states`` are the hidden states.
        """
        features, frames = self.frontend(waveforms, lengths)
        outs, frames, valid = self.encoder.encode(features, frames)
        embedding = self.encoder.pooling(outs, frames, valid)
        if self.frontend.kind == "3dspeaker_rdino":
            samples = (torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
                       if lengths is None else lengths)
            n = self.frame_lengths(samples).to(frames.device)
            width = int(n.max()) if len(n) else 0
            keep = ~padding_mask(n, width)
            states = [o.transpose(1, 2)[:, 1::2][:, :width] * keep[..., None].to(o.dtype) for o in outs]
        else:
            states = [o.transpose(1, 2)[:, ::2] for o in outs]
            n = (frames + 1) // 2
        pad = padding_mask(n, states[0].shape[1])
        return FeatureOutput(list(states), [], list(states), n, pad, embedding)

    def upstream_modules(self) -> dict[str, nn.Module]:
        """The parts kept for feature extraction (the DINO head is training-only)."""
        return {"frontend": self.frontend, "encoder": self.encoder}

    def save_pretrained(self, directory: str | os.PathLike, center: Tensor | None = None):  # type: ignore[override]
        """Write the teacher folder; ``center``: the DINO centre to store beside the weights."""
        aux = None if center is None else {"center": center.detach().reshape(-1)}
        return super().save_pretrained(directory, aux)


def speaker_config(preset: str) -> SpeakerConfig:
    """Teacher presets; each head equals the student's DINO head of JOOCI's preset of that name,
    so the student head can start from the teacher's."""
    if preset == "tiny":
        return SpeakerConfig(
            SpeakerEncoderConfig(ecapa=EcapaConfig(channels=64, num_blocks=2, se_channels=16,
                                                   attention_channels=16, embed_dim=32)),
            DINOHeadConfig(in_dim=32, hidden_dim=64, feature_dim=64, bottleneck_dim=32, out_dim=128))
    if preset == "small":
        return SpeakerConfig(
            SpeakerEncoderConfig(ecapa=EcapaConfig(channels=256, num_blocks=3, se_channels=64,
                                                   attention_channels=64, embed_dim=128)),
            DINOHeadConfig(in_dim=128, hidden_dim=512, feature_dim=1024, bottleneck_dim=128, out_dim=4096))
    if preset == "base":
        return SpeakerConfig()
    raise ValueError(f"unknown preset {preset!r}; choose one of tiny, small, base")


def load_speaker_folder(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                        ) -> tuple[SpeakerModel, Tensor | None]:
    """A teacher folder -> (the model in eval mode, the DINO centre it finished with, or None
    when the folder stores none).

    Raises:
        jooci.models.folder.CheckpointError: not a model folder, or weights that do not fit.
        TypeError: the folder holds another model type.
    """
    model, aux = SpeakerModel.load_folder(path, map_location)
    return model, aux.get("center")


def save_speaker_folder(model: SpeakerModel, folder: str | os.PathLike, center: Tensor | None = None) -> None:
    """Write ``model`` as a teacher folder (what :func:`load_speaker_folder` reads), with the DINO
    centre ``center`` if given (a teacher loaded without one distils against a zero centre)."""
    model.save_pretrained(folder, center)
