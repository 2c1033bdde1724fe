"""The pretraining config: model, teacher, data, targets, optimisation, losses, schedule, run.

One frozen dataclass per concern. A YAML file names a ``preset`` (tiny, small, base) that fills the
model and teacher architectures, and may override any field; ``key=value`` arguments on the
command line override the file (``schedule.phase2.steps=200``, ``optim.clip=5``). Unknown keys and
wrong types are refused with the dotted key named (see :mod:`jooci.configio`). The resolved config
is written into every run folder as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from jooci.configio import (
    ConfigError, from_dict, merge, not_utf8_reason, parse_overrides, save_yaml, set_dotted, to_dict,
)
from jooci.data.augment import AugmentConfig
from jooci.losses.dino import MultiCropConfig
from jooci.models.jooci import JOOCIConfig, jooci_config
from jooci.models.speaker import SpeakerConfig, speaker_config

PHASES = ("content", "teacher", "phase1", "phase2")

# The shipped presets (tiny, small, base): package data (jooci/configs/*.yaml), so they are there in an installed wheel too.
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def preset_path(preset: str) -> Path:
    """The shipped YAML config of ``preset`` (``tiny``, ``small`` or ``base``)."""
    path = CONFIGS / f"{preset}.yaml"
    if path.is_file():
        return path
    known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
    raise ConfigError(f"no shipped config for preset {preset!r} (known: {known})")
Phase = Literal["content", "teacher", "phase1", "phase2"]


@dataclass(frozen=True)
class DataConfig:
    """Where the audio comes from and how it is cut into batches."""

    corpus: str = "runs/demo/corpus"  # folder holding the manifests (relative paths: from the CWD)
    manifests: tuple[str, ...] = ("pretrain.jsonl", "train.jsonl", "dev.jsonl")  # unlabelled audio used for pretraining
    batch_seconds: float = 16.0  # audio per batch and process, padding included (fairseq max_tokens / 16000)
    min_seconds: float = 1.0  # shorter utterances are skipped (counted, logged)
    crop_seconds: float = 4.0  # longer ones are randomly cropped to this
    num_workers: int = 0
    # Unloadable audio files a process may skip (each logged with its reason and counted) before the
    # run stops with an error naming the file; 0: the first one stops it. Counted per process (each
    # DataLoader worker, each rank) and anew when a run resumes.
    max_bad_files: int = 0


@dataclass(frozen=True)
class TargetStageConfig:
    """The ``targets`` section: how ``--all`` builds its k-means targets (K per label set comes from
    ``model.clusters``; :class:`jooci.targets.TargetsConfig` is what the targets stage is given)."""

    fraction: float = 1.0  # share of frames k-means is fitted on
    iteration2_layer: int | None = None  # Content layer whose k-means makes the iteration-2 targets (None: the middle one)
    niter: int = 50  # k-means iterations
    backend: Literal["faiss", "sklearn"] = "faiss"


@dataclass(frozen=True)
class PhaseSchedule:
    steps: int
    lr: float
    warmup_steps: int = 0
    batch_seconds: float | None = None  # this phase's audio per batch and process (None: data.batch_seconds)

    def __post_init__(self) -> None:
        if self.batch_seconds is not None and not self.batch_seconds > 0:
            raise ValueError(f"batch_seconds must be positive, got {self.batch_seconds}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Steps and peak learning rate per phase (linear warm-up, then linear decay to 0, as fairseq's
    polynomial schedule). The paper: 50k Other-only steps, then 100k joint."""

    content: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(400, 5e-4, 40))
    content_iterations: int = 2
    teacher: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(300, 5e-4, 30))
    phase1: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(300, 5e-4, 30))
    phase2: PhaseSchedule = field(default_factory=lambda: PhaseSchedule(300, 2e-4, 30))
    # The paper: phase 1 trains the Other encoder only. False: Content is not frozen and keeps
    # training on its masked prediction in phase 1 (phase 1 runs phase 2's joint step), so it gets
    # phase 1's steps on top of its budget. (Unfreezing alone would change nothing: the Other
    # losses cannot reach Content through the stop-gradient.)
    freeze_content_phase1: bool = True
    # The shared CNN is neither encoder; whether phase 1 trains it (with the Other losses, at the
    # frontend's grad_mult) is left open by the paper (docs/method.md T3).
    freeze_frontend_phase1: bool = True
    scale: float = 1.0  # multiplies every phase's steps and warm-up (base.yaml with scale=0.1 runs a tenth of the paper's schedule)

    def of(self, phase: Phase) -> PhaseSchedule:
        """The phase's schedule with ``scale`` applied."""
        p: PhaseSchedule = getattr(self, phase)
        if self.scale == 1.0:
            return p
        return dataclasses.replace(p, steps=max(1, round(p.steps * self.scale)),
                                   warmup_steps=round(p.warmup_steps * self.scale))

    def batch_seconds(self, phase: Phase, data: DataConfig) -> float:
        """The phase's audio per batch and process: its own ``batch_seconds`` or the data's."""
        own = getattr(self, phase).batch_seconds
        return data.batch_seconds if own is None else own


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (fairseq HuBERT's betas and epsilon), gradient clipping and accumulation."""

    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    clip: float = 10.0
    accumulation: int = 1  # micro-batches per optimizer step


@dataclass(frozen=True)
class LossConfig:
    """Weights and hyper-parameters of every learning signal."""

    mpl: float = 1.0  # multi-cluster masked prediction (Content)
    mpl_unmasked: float = 0.0  # weight of the same loss on unmasked frames (fairseq pred_nomask_weight; HuBERT: 0)
    distill: float = 1.0  # DINO distillation from the frozen teacher (Other)
    distill_embedding: float = 0.0  # cosine distance student/teacher utterance embedding on the global crops (Other)
    regulariser: float = 1.0  # content adversary behind the gradient reversal layer (Other)
    # How the Other encoder fights the content adversary: "reversal" (the paper's gradient reversal:
    # the encoder maximises the adversary's cross-entropy) or "confusion" (the encoder pushes the
    # adversary's prediction towards uniform; bounded, see losses/regulariser.py)
    adversary: Literal["reversal", "confusion"] = "reversal"
    # Whether the Other losses train the shared frontend (docs/method.md T31): the adversary's
    # reversed gradient (and the reconstruction's) stop at it; distillation trains it (phase 2;
    # phase 1 freezes the frontend by default)
    adversary_trains_frontend: bool = False
    distill_trains_frontend: bool = True
    reconstruction: float = 0.0  # log-mel reconstruction decoder (ablation; needs model.mel_decoder)
    feature_penalty: float = 10.0  # HuBERT's L2 penalty on the CNN output
    mask_prob: float = 0.8
    mask_length: int = 10
    min_masks: int = 2
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    center_momentum: float = 0.9
    crops: MultiCropConfig = field(default_factory=MultiCropConfig)
    # noise / reverb / gain on every speaker view, each on its own (RDINO augments every view): in
    # the teacher phase (the teacher's recipe) and in phases 1-2 (JOOCI's distillation), separately
    augment_teacher_views: bool = False
    augment_views: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # RDINO recipe (teacher phase): EMA momentum ramp and the variance/covariance regulariser.
    ema_momentum: tuple[float, float] = (0.996, 1.0)
    rdino_std: float = 10.0
    rdino_cov: float = 1.0
    rdino_weight: tuple[float, float] = (0.05, 0.2)  # regulariser weight ramp over the teacher phase


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPUs that have it
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    max_nonfinite: int = 10  # stop after this many non-finite steps in a row
    cpu_onednn: bool = True  # oneDNN convolutions on CPU (off: ATen's own, ~10x slower for the small preset)
    # seconds any collective (a barrier included) may wait before the run fails under torchrun; the
    # longest wait is the k-means fit on rank 0 (PyTorch's defaults: 10 min for NCCL, 30 for gloo)
    dist_timeout: float = 3600.0
    # a teacher folder (a teacher phase's final/, or 3D-Speaker RDINO weights saved as one: README) whose
    # architecture is the teacher section's: skips the teacher phase
    teacher_init: str | None = None


@dataclass(frozen=True)
class PretrainConfig:
    preset: Literal["tiny", "small", "base"] = "tiny"
    model: JOOCIConfig = field(default_factory=lambda: jooci_config("tiny"))
    teacher: SpeakerConfig = field(default_factory=lambda: speaker_config("tiny"))
    data: DataConfig = field(default_factory=DataConfig)
    targets: TargetStageConfig = field(default_factory=TargetStageConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.model.dino != self.teacher.head:
            raise ValueError("model.dino must equal teacher.head: the student's DINO head starts as "
                             "a copy of the teacher's")
        if self.optim.accumulation < 1:
            raise ValueError("optim.accumulation must be >= 1")
        crops = self.losses.crops
        if self.teacher.head.use_bn and (crops.n_global < 2 or crops.n_local == 1):
            raise ValueError(f"losses.crops: n_global={crops.n_global}, n_local={crops.n_local}, but the DINO head's "
                             "BatchNorm (teacher.head.use_bn) needs two rows per crop group even for a batch of one "
                             "utterance (an epoch's last batch can be): use n_global >= 2 and n_local 0 or >= 2")
        content, joint = (self.schedule.batch_seconds(p, self.data) for p in ("content", "phase2"))
        if content != joint:
            raise ValueError(f"schedule.phase2 batches of {joint:g} s but content batches of {content:g} s: the "
                             "baseline's extra updates (content batches) would not match JOOCI's phase 2 "
                             "(equal budget); set both, or neither")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """Read a YAML config (or none: the tiny defaults) and apply ``key=value`` overrides.

    The preset's model and teacher architectures come first; the file's ``model:`` and
    ``teacher:`` sections override single fields of them.

    Raises:
        ConfigError: the file is missing or not YAML, or a key is unknown / of the wrong type
            (the dotted key and the file are named).
    """
    where = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e})") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: {not_utf8_reason(e)}") from None
        except RecursionError:
            raise ConfigError(f"{p}: not a usable config (nested too deeply)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        for key, value in parse_overrides(overrides or []).items():
            set_dotted(data, key, value)
        preset = data.get("preset", "tiny")
        if preset not in ("tiny", "small", "base"):
            raise ConfigError(f"preset: expected one of tiny, small, base, got {preset!r}")
        defaults = {**to_dict(PretrainConfig()), "model": to_dict(jooci_config(preset)),
                    "teacher": to_dict(speaker_config(preset))}
        merged = merge(defaults, data)
        return from_dict(PretrainConfig, merged)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def save_config(cfg: PretrainConfig, path: str | os.PathLike) -> Path:
    return save_yaml(cfg, path)

