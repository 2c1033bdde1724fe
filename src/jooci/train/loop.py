"""The training loop: one function, :func:`train_phase`, that reads top to bottom.

It builds the phase's models, data and optimizer; resumes from the run folder's last checkpoint if
there is one; then steps: micro-batches with gradient accumulation under bf16 autocast (GPU),
a collective non-finite guard, clipping, AdamW, the EMA teacher (teacher phase), logging
(metrics.jsonl, TensorBoard, tqdm) and checkpoints. The phase's own maths is in
:mod:`jooci.train.steps`; what the loop adds is machinery only.

Distributed: the trainable model sits inside DDP; the frozen teacher and the DINO centre stay
outside (the centre's batch mean is all-reduced explicitly). Every rank draws its masks and crops
from a generator seeded by (seed, step, rank), and the data sampler's position is checkpointed,
so a resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from jooci.audio import SAMPLE_RATE
from jooci.configio import flatten_dotted, to_dict
from jooci.data.dataset import Batch, make_loader
from jooci.data.manifest import Utterance, read_manifest, write_manifest
from jooci.fileio import atomic_dir, atomic_write_text
from jooci.losses.dino import DINOCenter, ema_update_
from jooci.losses.regulariser import dann_lambda
from jooci.losses.schedules import CosineSchedule
from jooci.models.baseline import BaselineConfig, HuBERTBaseline
from jooci.models.jooci import JOOCI
from jooci.models.speaker import SpeakerModel
from jooci.progress import is_terminal
from jooci.train import steps as S
from jooci.train.checkpoint import (
    TrainStateError, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state)
from jooci.train.config import Phase, PretrainConfig, save_config
from jooci.train.distributed import DistInfo, all_gather_rows, all_reduce_sum_, any_rank, barrier

log = logging.getLogger(__name__)

FINAL = "final"


class NonFiniteError(RuntimeError):
    """Too many non-finite steps in a row: the run is diverging."""


@dataclass
class PhaseInputs:
    """What a phase starts from (folders written by earlier phases)."""

    labels: Path | None = None  # `jooci targets` output for the pretraining manifest
    init: Path | None = None  # content: previous iteration; phase1: the content model; phase2: phase1
    teacher: Path | None = None  # teacher folder (phase1, phase2)


class PhaseModule(nn.Module):
    """The trainable part of a phase with its step function as ``forward``, so DDP sees one
    forward per step. The frozen teacher and the centre are kept off the module (outside DDP)."""

    def __init__(self, phase: Phase, model: nn.Module, teacher: SpeakerModel | None, center: DINOCenter | None,
                 joint_phase1: bool = False):
        super().__init__()
        self.phase, self.model = phase, model
        self.joint_phase1 = joint_phase1  # Content not frozen in phase 1: it keeps its masked prediction
        self._frozen = (teacher, center)  # a tuple attribute: not registered as a submodule

    @property
    def teacher(self) -> SpeakerModel | None:
        """The frozen speaker teacher (not a submodule: outside DDP and the optimiser)."""
        return self._frozen[0]

    @property
    def center(self) -> DINOCenter | None:
        """The teacher's DINO centre (None outside the teacher and JOOCI phases)."""
        return self._frozen[1]

    def forward(self, batch: Batch, ctx: S.StepContext) -> S.StepOutput:
        teacher, center = self.teacher, self.center
        if self.phase == "content":
            return S.content_step(self.model, batch, ctx)
        if self.phase == "teacher":
            return S.teacher_step(self.model, teacher, center, batch, ctx)
        if self.phase == "phase1" and not self.joint_phase1:
            return S.phase1_step(self.model, teacher, center, batch, ctx)
        return S.phase2_step(self.model, teacher, center, batch, ctx)


def train_phase(cfg: PretrainConfig, phase: Phase, run_dir: str | os.PathLike, inputs: PhaseInputs,
                dist: DistInfo, *, manifest: str | os.PathLike | None = None, stop_after: int | None = None,
                progress: bool = True) -> Path:
    """Train one phase into ``run_dir`` (resuming if it holds a checkpoint) and return
    ``run_dir/final`` (a ``save_pretrained`` folder; the teacher phase writes the teacher).

    Args:
        manifest: the pretraining manifest (default: the union of ``cfg.data.manifests``,
            written to ``run_dir/manifest.jsonl``).
        stop_after: leave the loop after this many steps of this call, as a preemption would
            (the run resumes from the last checkpoint); for tests.
    """
    run_dir = Path(run_dir)
    final = run_dir / FINAL
    check_run_config(cfg, run_dir, phase)
    if (final / "config.json").exists():
        log.info("%s: phase %s already finished", run_dir, phase)
        return final
    sched = cfg.schedule.of(phase)
    device = dist.device
    if device.type == "cpu" and not cfg.run.cpu_onednn:
        # oneDNN builds kernels per input shape (the steps round widths to a few shapes for it);
        # without it, CPU convolutions fall back to a path ~10x slower for the small preset.
        torch.backends.mkldnn.enabled = False
    torch.manual_seed(cfg.run.seed * 1000 + dist.rank)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    # --- data -----------------------------------------------------------------------------------
    utts = read_manifest(manifest) if manifest is not None else pretraining_manifest(cfg, run_dir, dist)
    label_names, labels = (), None
    if phase != "teacher":
        label_names, labels = _load_labels(cfg, inputs.labels, utts)
    d = cfg.data
    loader, sampler = make_loader(
        utts, max_seconds=cfg.schedule.batch_seconds(phase, d), min_samples=int(d.min_seconds * SAMPLE_RATE),
        max_samples=int(d.crop_seconds * SAMPLE_RATE), labels=labels, label_rate=50 if labels else None,
        num_workers=d.num_workers, seed=cfg.run.seed, rank=dist.rank, world_size=dist.world_size,
        max_bad=d.max_bad_files)

    # --- models ---------------------------------------------------------------------------------
    model, teacher, center = build_phase_models(cfg, phase, inputs)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    if center is not None:
        center.center = center.center.to(device)
    module = PhaseModule(phase, model, teacher, center, joint_phase1=not cfg.schedule.freeze_content_phase1)
    params = [p for p in model.parameters() if p.requires_grad]
    if dist.distributed:
        layerdrop = phase != "teacher" and cfg.model.content.transformer.layerdrop > 0
        module = DDP(module, device_ids=[dist.local_rank] if device.type == "cuda" else None,
                     find_unused_parameters=layerdrop)  # LayerDrop leaves whole layers unused
    optimizer = _optimizer(cfg, model, device)
    ema = CosineSchedule(cfg.losses.ema_momentum[0], cfg.losses.ema_momentum[1], max(1, sched.steps))
    rdino_w = CosineSchedule(cfg.losses.rdino_weight[1], cfg.losses.rdino_weight[1], max(1, sched.steps),
                             warmup_steps=min(sched.warmup_steps, sched.steps), start_warmup_value=cfg.losses.rdino_weight[0])

    # --- resume ---------------------------------------------------------------------------------
    step, nonfinite_in_row, skipped = 0, 0, 0
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        modules, state = load_checkpoint(ckpt, map_location=device)
        try:
            model.load_state_dict(modules["model"])
            if teacher is not None and "teacher" in modules:
                teacher.load_state_dict(modules["teacher"])
            optimizer.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
            if center is not None:
                center.load_state_dict(state["center"])
            set_rng_state(state["rng"][dist.rank] if isinstance(state["rng"], list) else state["rng"])
            step, nonfinite_in_row, skipped = state["step"], state["nonfinite_in_row"], state["skipped"]
        except KeyError as e:  # a checkpoint written by another phase or version
            raise TrainStateError(f"{ckpt}: damaged or not this phase's checkpoint (no {e} in it)") from None
        log.info("%s: resumed from %s (step %d)", run_dir, ckpt.name, step)
    if dist.is_main:
        _trim_metrics(run_dir / "metrics.jsonl", step)

    # --- the loop -------------------------------------------------------------------------------
    autocast = _autocast(cfg, device)
    writer = _tensorboard(run_dir, resumed_at=step) if dist.is_main else None
    metrics_file = open(run_dir / "metrics.jsonl", "a") if dist.is_main else None
    # A terminal gets a progress bar; a log file (a batch scheduler's) gets one plain line per record.
    interactive = is_terminal()
    bar = _bar(sched.steps, step, phase, progress and dist.is_main and interactive)
    plain = progress and dist.is_main and not interactive
    t_start, first_step = time.perf_counter(), step
    batches = _Stream(loader, sampler)
    reduce = (lambda t: all_reduce_sum_(t, dist)) if dist.distributed else None
    gather = (lambda t: all_gather_rows(t, dist)) if dist.distributed else None
    steps_this_call = 0
    model.train()
    if teacher is not None:
        # The EMA teacher of the teacher phase normalises with batch statistics, as DINO's does
        # (its BatchNorm running statistics would otherwise stay at their initial values, because
        # the EMA averages parameters only); the frozen teacher of phases 1-2 uses the running
        # statistics it finished with.
        teacher.train(phase == "teacher")
    t_last, audio_seconds = time.perf_counter(), 0.0
    while step < sched.steps:
        lr = _lr(step, sched.steps, sched.warmup_steps, sched.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        ctx = S.StepContext(
            losses=cfg.losses, generator=torch.Generator().manual_seed(_step_seed(cfg.run.seed, step, dist.rank)),
            seed=cfg.run.seed, step=step, label_names=label_names, grl_lambda=dann_lambda(step / max(1, sched.steps)),
            rdino_weight=rdino_w[step], reduce=reduce, gather=gather, world_size=dist.world_size)
        loss_sum, metrics_sum = 0.0, {}
        for micro in range(cfg.optim.accumulation):
            batch = next(batches).to(device)
            audio_seconds += float(batch.lengths.sum()) / SAMPLE_RATE * dist.world_size
            sync = micro == cfg.optim.accumulation - 1
            with _no_sync(module, sync), autocast:
                out = module(batch, ctx)
            (out.loss / cfg.optim.accumulation).backward()
            loss_sum += out.loss.item() / cfg.optim.accumulation
            for k, v in out.metrics.items():
                metrics_sum[k] = metrics_sum.get(k, 0.0) + v / cfg.optim.accumulation
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip) if params else torch.zeros(())
        bad = any_rank(not (math.isfinite(loss_sum) and math.isfinite(float(grad_norm))), dist)
        if bad:  # skipped on every rank together, so no rank waits for the others
            optimizer.zero_grad(set_to_none=True)
            nonfinite_in_row += 1
            skipped += 1
            log.warning("%s step %d: non-finite loss or gradient, step skipped (%d in a row)", phase, step, nonfinite_in_row)
            if nonfinite_in_row >= cfg.run.max_nonfinite:
                raise NonFiniteError(f"{run_dir}: {nonfinite_in_row} non-finite steps in a row at step {step}; "
                                     "lower the learning rate or check the data")
        else:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            nonfinite_in_row = 0
            if phase == "teacher":
                ema_update_(teacher, model, ema[step])
        step += 1
        steps_this_call += 1
        bar.update(1)

        if dist.is_main and (step % cfg.run.log_every == 0 or step == sched.steps or step == 1):
            now = time.perf_counter()
            record = {"step": step, "loss": loss_sum, **metrics_sum, "lr": lr, "grad_norm": float(grad_norm),
                      "skipped_steps": skipped, "audio_seconds_per_second": audio_seconds / max(now - t_last, 1e-9)}
            t_last, audio_seconds = now, 0.0
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            for k, v in record.items():
                if k != "step" and writer is not None:
                    writer.add_scalar(f"{phase}/{k}", v, step)
            bar.set_postfix(loss=f"{loss_sum:.3f}")
            if plain:
                log.info("%s", _progress_line(phase, record, sched.steps, (now - t_start) / (step - first_step)))

        if step % cfg.run.checkpoint_every == 0 or step == sched.steps:
            if writer is not None:  # every event up to the checkpoint is on disk before it
                writer.flush()
            _checkpoint(run_dir, step, model, teacher if phase == "teacher" else None, optimizer,
                        batches, center, nonfinite_in_row, skipped, cfg, dist)
        if stop_after is not None and steps_this_call >= stop_after and step < sched.steps:
            bar.close()
            _close(writer, metrics_file)
            return run_dir  # "preempted": no final folder

    bar.close()
    _close(writer, metrics_file)
    if dist.is_main:
        _save_final(phase, teacher if phase == "teacher" else model, final, center)
    barrier(dist)
    return final


# ---------------------------------------------------------------------------------------------
# Models per phase


def build_phase_models(cfg: PretrainConfig, phase: Phase, inputs: PhaseInputs
                       ) -> tuple[nn.Module, SpeakerModel | None, DINOCenter | None]:
    """(trainable model, teacher, centre) for ``phase``, initialised from earlier phases.

    content: a HuBERTBaseline (from the previous iteration if given); teacher: a SpeakerModel
    student and its EMA copy; phase1: JOOCI with frontend + Content (+ cluster heads) from the
    content model, the DINO head from the teacher's, Content frozen; phase2: JOOCI from phase 1,
    everything trainable. The teacher of phases 1-2 is frozen.
    """
    from jooci import hub

    m = cfg.model
    if phase == "content":
        model = HuBERTBaseline(BaselineConfig(m.frontend, m.content, m.clusters))
        if inputs.init is not None:
            model.load_state_dict(hub.load(inputs.init).state_dict())
        return model, None, None
    if phase == "teacher":
        student = SpeakerModel(cfg.teacher)
        teacher = copy.deepcopy(student)
        teacher.requires_grad_(False)
        return student, teacher, DINOCenter(cfg.teacher.head.out_dim, cfg.losses.center_momentum)

    if inputs.teacher is None:
        raise ValueError(f"phase {phase} needs a teacher (jooci pretrain --phase: --teacher FOLDER; "
                         "--all: run.teacher_init, or its own teacher stage)")
    teacher, center = load_teacher(inputs.teacher, cfg)
    teacher.requires_grad_(False)
    model = JOOCI(m)
    if phase == "phase1":
        if inputs.init is None:
            raise ValueError("phase1 needs the content model to start from")
        content = hub.load(inputs.init)
        for name in ("frontend", "content", "cluster_heads"):
            getattr(model, name).load_state_dict(getattr(content, name).state_dict())
        model.dino_head.load_state_dict(teacher.head.state_dict())
        frozen = (("content", "cluster_heads") if cfg.schedule.freeze_content_phase1 else ()) + \
            (("frontend",) if cfg.schedule.freeze_frontend_phase1 else ())
        for name in frozen:
            getattr(model, name).requires_grad_(False)  # frozen, and so left out of the optimizer
    else:
        if inputs.init is None:
            raise ValueError("phase2 needs the phase-1 model to start from")
        model.load_state_dict(hub.load(inputs.init).state_dict())
    if cfg.losses.regulariser == 0:
        model.regulariser.requires_grad_(False)  # unused: keep it out of the optimizer and DDP
    if model.mel_decoder is not None and cfg.losses.reconstruction == 0:
        model.mel_decoder.requires_grad_(False)  # built but unused: keep DDP from waiting for it
    return model, teacher, center


# Settings that may change between a run and its resumption without changing what it trains:
# where it runs, how often it logs or checkpoints, how many bad files it may skip.
RESUMABLE_KEYS = ("run.device", "run.precision", "run.log_every", "run.checkpoint_every", "run.keep_checkpoints",
                  "run.max_nonfinite", "run.cpu_onednn", "data.num_workers", "data.max_bad_files")


def check_run_config(cfg: PretrainConfig, run_dir: Path, phase: str) -> None:
    """Refuse to reuse or resume a run folder written with a different config.

    A finished phase is reused and a started one resumed from its checkpoints; both are only
    right for the same settings. Without this check, rerunning after a change (a new frontend,
    other steps) would silently keep the old model.

    Raises:
        ConfigError: the folder's ``config.yaml`` differs (the differing keys are named) or cannot
            be read with this version of jooci.
    """
    from jooci.configio import ConfigError
    from jooci.train.config import load_config

    saved = run_dir / "config.yaml"
    if not saved.exists():
        return
    try:
        old = load_config(saved)
    except ConfigError as e:
        raise ConfigError(f"{run_dir}: holds a {phase} run whose config this jooci cannot read ({e}); "
                          "use another run folder or delete this one") from None
    a, b = flatten_dotted(to_dict(old)), flatten_dotted(to_dict(cfg))
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not k.startswith(RESUMABLE_KEYS))
    if diff:
        shown = "; ".join(f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in diff[:5])
        more = f" (+{len(diff) - 5} more)" if len(diff) > 5 else ""
        raise ConfigError(f"{run_dir}: holds a {phase} run trained with a different config ({shown}{more}); "
                          "reusing it would keep the old model. Use another run folder or delete this one")


def load_teacher(path: str | os.PathLike, cfg: PretrainConfig) -> tuple[SpeakerModel, DINOCenter]:
    """A teacher folder written by the teacher phase (``config.json`` + ``model.safetensors``,
    whose ``center`` tensor is the DINO centre the teacher finished with), in eval mode.

    Raises:
        ValueError: no such folder, not a teacher folder, or an architecture other than the
            config's ``teacher`` section (the differing fields named).
    """
    from jooci.configio import flatten_dotted
    from jooci.models.speaker import load_speaker_folder

    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"{path}: the teacher folder does not exist")
    missing = [f for f in ("config.json", "model.safetensors") if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{path}: not a teacher folder (no {' or '.join(missing)}); give the teacher phase's "
                         "RUN/teacher/final, or a 3D-Speaker RDINO saved with save_speaker_folder (README)")
    try:
        model, saved_center = load_speaker_folder(folder)
    except Exception as e:  # a damaged folder: name it and the problem, not a traceback from inside a reader
        raise ValueError(f"{path}: cannot read the teacher folder ({type(e).__name__}: {e})") from e
    if model.cfg != cfg.teacher:
        have, want = flatten_dotted(model.cfg.to_dict()), flatten_dotted(cfg.teacher.to_dict())
        diff = [f"{k}: {have.get(k)!r} in the folder, {want.get(k)!r} in the config"
                for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
        raise ValueError(f"{path}: the teacher's architecture differs from the config's teacher section "
                         f"(teacher.{'; teacher.'.join(diff[:5])}{'; ...' if len(diff) > 5 else ''})")
    center = DINOCenter(model.cfg.head.out_dim, momentum=1.0)
    if saved_center is not None:
        center.center.copy_(saved_center.reshape(1, -1))
    return model, center


def _save_final(phase: Phase, model: nn.Module, final: Path, center: DINOCenter | None) -> None:
    from jooci import hub

    with atomic_dir(final) as tmp:
        if phase == "teacher":
            from jooci.models.speaker import save_speaker_folder

            save_speaker_folder(model, tmp, center.center)
        else:
            hub.save_pretrained(model, tmp)


# ---------------------------------------------------------------------------------------------
# Data and labels


def pretraining_manifest(cfg: PretrainConfig, run_dir: Path, dist: DistInfo) -> list[Utterance]:
    """The union of ``cfg.data.manifests`` (in order), written once to ``run_dir/manifest.jsonl``
    so the labels and every later phase refer to one list."""
    path = run_dir / "manifest.jsonl"
    if dist.is_main and not path.exists():
        utts = []
        for name in cfg.data.manifests:
            utts += read_manifest(Path(cfg.data.corpus) / name)
        write_manifest(utts, path)
    barrier(dist)
    return read_manifest(path, check_durations=False)


def _load_labels(cfg: PretrainConfig, labels_dir: Path | None, utts: list[Utterance]):
    from jooci.targets.pipeline import load_targets

    if labels_dir is None:
        raise ValueError("masked prediction needs labels: run `jooci targets` and pass the folder")
    ks = cfg.model.clusters.num_clusters
    by_k = load_targets(labels_dir, utts, ks)
    names = tuple(f"k{k}" for k in ks)
    return names, {f"k{k}": by_k[k] for k in ks}


class _Stream:
    """Batches forever, epoch after epoch, counting how many of this epoch the loop consumed:
    with DataLoader workers prefetching, that count (not the sampler's) is the resume point."""

    def __init__(self, loader, sampler):
        self.loader, self.sampler = loader, sampler
        self.consumed = sampler.state_dict()["position"]
        self._it = iter(loader)

    def __next__(self) -> Batch:
        while True:
            try:
                batch = next(self._it)
            except StopIteration:
                self.sampler.set_epoch(self.sampler.epoch + 1)
                self.consumed = 0
                self._it = iter(self.loader)
                batch = next(self._it)
            self.consumed += 1
            if len(batch):  # a batch of skipped bad files only is passed over (no collective here)
                return batch

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict(position=self.consumed)


# ---------------------------------------------------------------------------------------------
# Optimisation


def _optimizer(cfg: PretrainConfig, model: nn.Module, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norms (1-D tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.0, betas=cfg.optim.betas, eps=cfg.optim.eps,
                             fused=device.type == "cuda")


def _lr(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak``, then linear decay to 0 at ``total`` (fairseq polynomial, power 1)."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 1009 + rank) % (2**63 - 1)


def _autocast(cfg: PretrainConfig, device: torch.device):
    precision = cfg.run.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


class _no_sync:
    """DDP's ``no_sync`` on all but the last micro-batch (a no-op without DDP)."""

    def __init__(self, module: nn.Module, sync: bool):
        self.ctx = module.no_sync() if isinstance(module, DDP) and not sync else None

    def __enter__(self):
        return self.ctx.__enter__() if self.ctx else None

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc) if self.ctx else False


# ---------------------------------------------------------------------------------------------
# Checkpoints and logging


def _checkpoint(run_dir: Path, step: int, model: nn.Module, teacher: nn.Module | None, optimizer,
                batches: _Stream, center: DINOCenter | None, nonfinite_in_row: int, skipped: int,
                cfg: PretrainConfig, dist: DistInfo) -> None:
    # Every rank's RNG differs (dropout); gather them so each rank resumes with its own.
    states: list[Any] = [rng_state()]
    if dist.distributed:
        gathered: list[Any] = [None] * dist.world_size
        torch.distributed.all_gather_object(gathered, states[0])
        states = gathered
    if dist.is_main:
        modules: dict[str, Any] = {"model": model}
        if teacher is not None:
            modules["teacher"] = teacher
        state = {"optimizer": optimizer.state_dict(), "sampler": batches.state_dict(),
                 "rng": states if dist.distributed else states[0], "nonfinite_in_row": nonfinite_in_row,
                 "skipped": skipped}
        if center is not None:
            state["center"] = center.state_dict()
        save_checkpoint(run_dir, step, modules, state, keep=cfg.run.keep_checkpoints)
    barrier(dist)


def _tensorboard(run_dir: Path, resumed_at: int = 0):
    """A TensorBoard writer for ``run_dir``, or None without the tensorboard extra (metrics.jsonl
    holds the same numbers). A run resumed from its checkpoint of step ``resumed_at`` purges the
    events a killed run logged after it (TensorBoard's ``purge_step``), so no step shows twice."""
    from jooci.extras import available, missing_message

    if not available("tensorboard"):
        log.warning("no TensorBoard events: %s", missing_message("tensorboard"))
        return None
    from torch.utils.tensorboard import SummaryWriter

    folder = run_dir / "tensorboard"
    if resumed_at:
        # TensorBoard reads event files in name order, and a name starts with its whole second of
        # creation: the new file must sort after the killed run's for its purge to apply to them.
        stamps = [int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*")
                  if p.name.split(".")[3].isdigit()]
        while stamps and int(time.time()) <= max(stamps):
            time.sleep(0.05)
    return SummaryWriter(str(folder), purge_step=resumed_at + 1 if resumed_at else None)


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the records of steps up to ``step`` (where training starts now): a run killed after
    its last checkpoint logged steps it will log again; a line cut off by the kill is dropped."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def _close(writer, metrics_file) -> None:
    if writer is not None:
        writer.close()
    if metrics_file is not None:
        metrics_file.close()


def _progress_line(phase: str, record: dict[str, Any], total: int, seconds_per_step: float) -> str:
    """One plain progress line: step, every loss and metric, throughput, ETA at the pace so far."""
    step = record["step"]
    skip = {"step", "lr", "grad_norm", "skipped_steps", "audio_seconds_per_second"}
    values = " ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in skip)
    left = int(round(seconds_per_step * (total - step)))
    eta = f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
    return (f"{phase} step {step}/{total} ({100 * step / total:.0f} %): {values} | lr {record['lr']:.3g} "
            f"| {record['audio_seconds_per_second']:.0f} audio-s/s | ETA {eta}")


def _bar(total: int, initial: int, phase: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"pretrain {phase}", unit="step", dynamic_ncols=True,
                disable=not enabled)
