"""The speaker model: RDINO's teacher architecture, ECAPA-TDNN on 80-d log-mel features.

Same blocks as the Other encoder (:mod:`jooci.models.res2net`), composed without appends and fed
log-mel frames instead of CNN frames. Feature extraction is not done here (see ``jooci.features``):
the model takes ``(B, T, n_mels)`` log-mel frames with their lengths. To reproduce 3D-Speaker's
RDINO embeddings with imported weights, feed ``log(mel_power + 1e-6)`` of a 16 kHz mel
spectrogram with n_fft 512, window 400, hop 160, 80 bands (what 3D-Speaker's ``infer_sv_rdino``
feeds before its ``log_input``); the model then applies the same per-utterance instance norm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from jooci.configio import from_dict as config_from_dict, to_dict as config_to_dict
from jooci.models._util import check_lengths
from jooci.models.heads import DINOHead, DINOHeadConfig, DINOHeadOutput
from jooci.models.res2net import (
    EcapaConfig, EcapaPooling, TDNNBlock, build_se_res2net_blocks, masked_instance_norm, valid_mask)


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    """ECAPA-TDNN on log-mel: RDINO's backbone (C=512, MFA 1536, 192-d embedding by default)."""

    n_mels: int = 80
    instance_norm: bool = True  # per-utterance mean/variance normalisation of the input (RDINO)
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

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """features: (B, T, n_mels) log-mel; lengths: (B,) valid frames. Returns (B, embed_dim)."""
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
        return self.pooling(outs, lengths, valid)


@dataclass
class SpeakerOutput:
    """embedding: (B, embed_dim); head: the DINO head's outputs."""

    embedding: Tensor
    head: DINOHeadOutput


class SpeakerModel(nn.Module):
    """RDINO teacher (or its student while it is trained): encoder + DINO head."""

    def __init__(self, cfg: SpeakerConfig):
        super().__init__()
        if cfg.head.in_dim != cfg.encoder.ecapa.embed_dim:
            raise ValueError(f"head.in_dim {cfg.head.in_dim} != encoder embed_dim {cfg.encoder.ecapa.embed_dim}")
        self.cfg = cfg
        self.encoder = SpeakerEncoder(cfg.encoder)
        self.head = DINOHead(cfg.head)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> SpeakerOutput:
        """features: (B, T, n_mels) log-mel; lengths: (B,) valid frames."""
        emb = self.encoder(features, lengths)
        return SpeakerOutput(emb, self.head(emb))


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


def load_speaker_folder(path: str | os.PathLike) -> tuple[SpeakerModel, Tensor | None]:
    """A teacher folder written by the teacher phase (``config.json`` with model_type "speaker" +
    ``model.safetensors``) -> (the model in eval mode, the DINO centre it finished with or None).

    Raises:
        ValueError: the folder holds no speaker model.
    """
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    if meta.get("model_type") != "speaker":
        raise ValueError(f"{path}: not a speaker (teacher) model folder")
    model = SpeakerModel(config_from_dict(SpeakerConfig, meta["config"]))
    tensors = load_file(str(path / "model.safetensors"))
    center = tensors.pop("center", None)
    model.load_state_dict(tensors)
    return model.eval(), center


def save_speaker_folder(model: SpeakerModel, folder: str | os.PathLike, center: Tensor | None = None) -> None:
    """Write ``model`` as a teacher folder (what :func:`load_speaker_folder` reads): ``config.json``
    (model_type "speaker") and ``model.safetensors`` with the DINO centre (zeros if None)."""
    import json
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["center"] = (torch.zeros(model.cfg.head.out_dim) if center is None
                         else center.detach().cpu().reshape(-1).contiguous())
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "speaker", "format_version": 1,
                                                   "config": config_to_dict(model.cfg)}, indent=1))


def untrained_speaker_folder(like: str | os.PathLike, out: str | os.PathLike, seed: int = 0):
    """An untrained teacher of ``like``'s architecture (a teacher folder), initialised from ``seed``
    (not the teacher phase's own initialisation, which seeds each rank differently),
    written to ``out`` (kept if it is already there with that architecture and seed). The
    reference that says how much a teacher's training gave it: a randomly initialised network
    already separates speakers by their spectra. Returns ``out`` as a Path.

    Raises:
        ValueError: ``like`` holds no speaker model.
    """
    import json
    from pathlib import Path

    import torch

    like, out = Path(like), Path(out)
    meta = json.loads((like / "config.json").read_text())
    if meta.get("model_type") != "speaker" or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{like}: not a speaker (teacher) model folder (config.json needs model_type "
                         "'speaker' and a 'config' section)")
    cfg = config_from_dict(SpeakerConfig, meta["config"])
    mark = out / "untrained.json"
    want = {"like": str(like), "seed": seed, "config": config_to_dict(cfg)}
    if mark.is_file() and json.loads(mark.read_text()) == want and (out / "model.safetensors").is_file():
        return out
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SpeakerModel(cfg).eval()
    tmp = out.with_name(out.name + ".tmp")
    save_speaker_folder(model, tmp)
    (tmp / "untrained.json").write_text(json.dumps(want, indent=1))
    if out.exists():
        import shutil
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
