"""The whole pretraining recipe as one resumable run (what ``jooci pretrain`` calls).

``jooci pretrain --config C --out RUN --all`` runs, each stage in its own folder and skipped when
already finished (so an interrupted run is simply started again)::

    RUN/manifest.jsonl   the pretraining audio (union of data.manifests)
    RUN/targets-1        k-means on MFCC                      (jooci targets)
    RUN/content-1        Content iteration 1 = HuBERT-style baseline, iteration 1
    RUN/targets-2        k-means on a middle layer of content-1
    RUN/content-2        Content iteration 2 (starts from content-1)  -> the baseline
    RUN/teacher          the RDINO speaker teacher (unless run.teacher_init is given)
    RUN/phase1           JOOCI, Other encoder only, Content frozen
    RUN/phase2           JOOCI, everything jointly
    RUN/baseline-extra   the baseline continued for as many Content updates as phase 2 gives
                         JOOCI's Content encoder (same targets, same schedule): equal budgets
    RUN/final            the JOOCI model (save_pretrained folder)
    RUN/baseline         the baseline model

``--phase P`` runs one stage with its inputs named on the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from jooci.data.augment import sound_folders
from jooci.train.config import PHASES, PretrainConfig
from jooci.train.distributed import DistInfo, RankFailed, all_ranks_succeed, barrier, init_distributed, shutdown
from jooci.train.loop import FINAL, PhaseInputs, load_teacher, pretraining_manifest, train_phase

log = logging.getLogger(__name__)


def make_stage_targets(cfg: PretrainConfig, manifest: Path, out: Path, dist: DistInfo,
                       model: Path | None = None, layer: int | None = None, progress: bool = True) -> Path:
    """k-means targets for every label set of ``cfg.model.clusters`` (MFCC, or ``layer`` of
    ``model``); skipped when finished.

    Under torchrun every rank takes part, so no rank idles through the whole corpus: rank ``r``
    dumps shard ``r`` of ``world_size`` (a contiguous share of the manifest, on its own device),
    rank 0 fits k-means on a sample drawn from all shards (its cost is capped by
    ``max_frames``, not by the corpus: the longest any rank waits), every rank labels its own
    shard, and rank 0 merges. The labels equal a one-process run's, since the sample does not
    depend on the sharding. After each step the ranks agree on whether all succeeded, so a failure
    on one rank stops all of them at once rather than after ``run.dist_timeout``.
    """
    from jooci.data.manifest import read_manifest
    from jooci.targets.pipeline import PROVENANCE, TargetsConfig, make_targets
    from jooci.targets.sources import mfcc_source, model_source

    if (out / PROVENANCE).exists():  # every rank looks before rank 0 can write it (after the label step)
        return out
    source = mfcc_source() if model is None else model_source(model, layer, device=dist.device)
    tcfg = TargetsConfig(ks=cfg.model.clusters.num_clusters, fraction=cfg.targets.fraction,
                         seed=cfg.run.seed, niter=cfg.targets.niter, backend=cfg.targets.backend,
                         nshard=dist.world_size)
    if not dist.distributed:
        make_targets(manifest, out, source, tcfg, progress=progress)
        return out
    utts = read_manifest(manifest, check_durations=False)
    for step, on_this_rank, ranks in (("dump", True, [dist.rank]), ("fit", dist.is_main, []),
                                      ("label", True, [dist.rank]), ("merge", dist.is_main, [])):
        error: BaseException | None = None
        if on_this_rank:
            log.info("targets %s: %s step on rank %d of %d", out.name, step, dist.rank, dist.world_size)
            try:
                make_targets(manifest, out, source, tcfg, steps=(step,), ranks=ranks, progress=progress, utts=utts)
            except Exception as e:  # reported to the other ranks first, then raised here
                error = e
        if not all_ranks_succeed(error is None, dist):
            if error is not None:
                raise error
            raise RankFailed(f"{out}: the targets' {step} step failed on another rank (its log names the problem)")
    return out


def teacher_folder(cfg: PretrainConfig, run_dir: str | os.PathLike) -> Path:
    """The teacher phases 1-2 of the ``--all`` run in ``run_dir`` read: ``run.teacher_init`` if set,
    else the run's own teacher stage."""
    return Path(cfg.run.teacher_init) if cfg.run.teacher_init else Path(run_dir) / "teacher" / FINAL


def check_teacher_init(cfg: PretrainConfig) -> None:
    """Refuse an unusable ``run.teacher_init`` before any training rather than after the Content
    iterations (ValueError naming the folder and the problem; see :func:`load_teacher`)."""
    if cfg.run.teacher_init:
        load_teacher(cfg.run.teacher_init, cfg)


def run_all(cfg: PretrainConfig, run_dir: str | os.PathLike, dist: DistInfo, progress: bool = True) -> Path:
    """Every stage, in order, skipping finished ones. Returns ``RUN/final``."""
    check_teacher_init(cfg)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    pretraining_manifest(cfg, run, dist)
    manifest = run / "manifest.jsonl"
    n_iter = cfg.schedule.content_iterations
    labels = make_stage_targets(cfg, manifest, run / "targets-1", dist, progress=progress)
    content = None
    for it in range(1, n_iter + 1):
        if it > 1:
            layer = cfg.targets.iteration2_layer or max(1, cfg.model.content.transformer.num_layers // 2)
            labels = make_stage_targets(cfg, manifest, run / f"targets-{it}", dist, model=content,
                                        layer=layer, progress=progress)
        content = train_phase(cfg, "content", run / f"content-{it}", PhaseInputs(labels=labels, init=content),
                              dist, manifest=manifest, progress=progress)
    teacher = teacher_folder(cfg, run) if cfg.run.teacher_init else train_phase(
        cfg, "teacher", run / "teacher", PhaseInputs(), dist, manifest=manifest, progress=progress)
    p1 = train_phase(cfg, "phase1", run / "phase1", PhaseInputs(labels=labels, init=content, teacher=teacher),
                     dist, manifest=manifest, progress=progress)
    p2 = train_phase(cfg, "phase2", run / "phase2", PhaseInputs(labels=labels, init=p1, teacher=teacher),
                     dist, manifest=manifest, progress=progress)
    # Equal budget: JOOCI's Content encoder gets phase2.steps more updates than the Content
    # iterations; the baseline gets the same number, with the same schedule, data and targets.
    extra = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, content=cfg.schedule.phase2))
    baseline = train_phase(extra, "content", run / "baseline-extra", PhaseInputs(labels=labels, init=content),
                           dist, manifest=manifest, progress=progress)
    if dist.is_main:
        for src, name in ((p2, FINAL), (baseline, "baseline")):
            dst = run / name
            if not (dst / "config.json").exists():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
    barrier(dist)
    return run / FINAL


def check_sound_folders(cfg: PretrainConfig) -> None:
    """Index the noise and RIR folders the config names (``losses.augment.noise_dir`` /
    ``rir_dir``) before anything runs, so a wrong path fails at the start, not hours later at the
    first augmented view (:class:`~jooci.data.augment.AugmentError` naming the folder). Folders
    given while both augmentation switches are off are checked too, and a warning says so."""
    aug = cfg.losses.augment
    if aug.noise_dir is None and aug.rir_dir is None:
        return
    sound_folders(aug)
    if not (cfg.losses.augment_teacher_views or cfg.losses.augment_views):
        log.warning("losses.augment names noise/RIR folders but losses.augment_teacher_views and "
                    "losses.augment_views are both off: the folders are not used")


def pretrain(cfg: PretrainConfig, out: str | os.PathLike, *, phase: str | None = None,
             manifest: str | os.PathLike | None = None, labels: str | os.PathLike | None = None,
             init: str | os.PathLike | None = None, teacher: str | os.PathLike | None = None,
             resume: bool = False, progress: bool = True) -> Path | None:
    """``jooci pretrain``: every stage into ``out`` (``phase=None``, :func:`run_all`) or one phase
    with its inputs (``manifest``, ``labels``, ``init``, ``teacher``; :func:`train_phase`).

    ``resume``: require a checkpoint (or a finished stage) in ``out``. An unusable teacher is
    refused before any training. ``progress``: a progress bar on a terminal, one plain log line
    per metrics record otherwise (a batch scheduler's log); False: neither. Returns the model
    folder on the main rank, None on the others.

    Raises:
        ValueError: ``resume`` without a checkpoint, a missing or unusable teacher.
    """
    out = Path(out)
    if phase is not None and phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose from {', '.join(PHASES)}")
    if resume:
        from jooci.train.checkpoint import latest_checkpoint

        folders = [out] if phase else [out, *(d for d in out.glob("*") if d.is_dir())]
        if not any(latest_checkpoint(f) or (f / FINAL / "config.json").exists() for f in folders):
            raise ValueError(f"--resume given but {out} holds no checkpoint")
    check_sound_folders(cfg)
    if phase is None:
        check_teacher_init(cfg)
    elif phase in ("phase1", "phase2"):
        if teacher is None:
            raise ValueError(f"--phase {phase} needs --teacher FOLDER (run.teacher_init is read by --all)")
        load_teacher(teacher, cfg)
    dist = init_distributed(cfg.run.device, timeout=cfg.run.dist_timeout)
    try:
        if phase is None:
            final = run_all(cfg, out, dist, progress=progress)
        else:
            final = train_phase(cfg, phase, out, PhaseInputs(labels, init, teacher), dist, manifest=manifest,
                                progress=progress)
    finally:
        shutdown(dist)
    return final if dist.is_main else None
