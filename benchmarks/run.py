"""jooci's benchmark runner: every speed figure of the project against its peer, in one process.

    python benchmarks/run.py --mode cpu --out runs/bench/bench-cpu.jsonl          # make bench
    python benchmarks/run.py --mode gpu --out runs/bench/bench-gpu.jsonl          # make bench MODE=gpu
    python benchmarks/run.py --mode gpu --device cpu --tiny --out /tmp/b.jsonl    # the GPU branch, on a CPU
    ... --profile     # adds a torch.profiler summary per measurement (FILE.profile.txt / .profile.jsonl)
    ... --only steps extract kmeans   # some groups only;  --budget-scale 0.5   # halve the time budgets

What is measured (each with its peer, built in the same process and timed in alternating runs:
A, B, C, A, B, C, ... after warm-up; a cheap item may run a few times in a row within its turn):

1. ``train_step``: what ``jooci pretrain`` runs per step -- the phase's step function through
   :class:`jooci.train.loop.PhaseModule` (masking, the model, every loss term and its logged
   metrics) under the loop's precision, backward, ``loss.item()``, gradient clipping, the finite
   check and the loop's AdamW (fused on the GPU), plus the EMA update in the teacher phase. The
   peer is HF ``transformers.HubertModel`` (its default training forward) + a 504-way linear head +
   cross-entropy on every frame, through the same optimiser code. The baseline Content step on
   the peer's shapes starts from the peer's own weights (:func:`jooci.models.convert.from_hf_hubert`).
   The teacher, phase-1 and phase-2 steps are compared with the peer by audio-seconds per second.
   Forward, backward and optimiser time are recorded separately (CUDA events on the GPU, so no
   extra synchronisation inside the step).
2. ``extract``: every hidden state under ``inference_mode``: the baseline's and JOOCI's
   ``extract_features`` (their Content part holds the peer's weights) against
   ``HubertModel(output_hidden_states=True)``; the largest difference from the peer's last state is
   recorded as a check that the weights really are the same.
3. ``loader``: :func:`jooci.data.dataset.make_loader` over a synthetic corpus
   (:func:`jooci.data.synth.synthesize`; random-noise WAVs where the synth extra is missing) with
   random 50 Hz labels, one epoch per run, batches moved to the device as the loop does; its
   audio-seconds per second against what the Content and phase-2 steps consume per second.
4. ``kmeans``: :func:`jooci.targets.kmeans.assign` against scikit-learn's
   ``MiniBatchKMeans.predict`` on the same features and centroids (label agreement recorded).

Modes: ``cpu`` (the project's 2-core machine, fp32): the ``small`` preset's four step kinds at the
demo's batch (steps per second), the base-shape Content step and extraction against HF at 2 x 4 s,
repeats fitted to a time budget so the whole run takes under 5 minutes. ``gpu``: the ``base``
preset, bf16 autocast, batch 8 x 15.625 s, fused AdamW, extraction 16 x 10 s, MFU against a
measured bf16 matmul. ``--tiny``: the tiny preset and one repeat of everything (the smoke test).
Both modes run the same code; only shapes, presets, precision and repeat counts differ.

Output: one JSON record per measurement (FILE.jsonl), each naming the machine, versions, date,
dtype, shapes, timing statistics (median and min of the repeats), FLOPs
(``torch.utils.flop_counter``, counted on the first warm-up run), MFU (GPU), peak memory, its peer
and the ratio (> 1: faster than the peer); a Markdown table in FILE.md (also printed).
Imports: torch, transformers, numpy, scikit-learn and jooci (with its own dependencies) only, so
the GPU mode runs under a GPU machine's own torch (``PYTHONPATH=src``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import itertools
import json
import math
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from jooci.audio import SAMPLE_RATE
from jooci.data.dataset import Batch, make_loader
from jooci.data.manifest import Utterance, read_manifest, write_manifest
from jooci.losses.dino import DINOCenter, ema_update_
from jooci.models import JOOCI, HuBERTBaseline, SpeakerModel
from jooci.models.baseline import BaselineConfig
from jooci.train import steps as S
from jooci.train.config import PretrainConfig, load_config, preset_path
from jooci.train.loop import PhaseModule

HOP = 320  # samples per 50 Hz frame (label rate of the k-means targets)
HF_CLASSES = 504  # the peer's head: HuBERT-Base's 504-way iteration-2 targets, as ../shared/bench timed it


# ---------------------------------------------------------------------------------------------
# Settings per mode


@dataclass
class Plan:
    """Everything that differs between the modes (the code paths do not)."""

    mode: str
    device: torch.device
    tiny: bool
    step_preset: str  # the four step kinds
    hf_preset: str  # the Content step and extraction against HF
    step_shape: tuple[int, float]  # (batch, seconds) of the four step kinds
    hf_shape: tuple[int, float]  # (batch, seconds) of the Content step against HF
    extract_shape: tuple[int, float]
    kmeans_shape: tuple[int, int, int]  # N frames, D, K
    corpus_minutes: float
    bf16: bool
    fused_adamw: bool
    warm: int
    min_reps: int
    max_reps: int
    max_inner: int
    budgets: dict[str, float]  # seconds of timed rounds per group
    deadline_s: float  # the whole run, set-up included: groups shrink to their minimum past it
    matmul_n: int | None

    @property
    def dtype(self) -> str:
        return "bf16 autocast" if self.bf16 else "fp32"

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


def make_plan(args) -> Plan:
    dev = torch.device(args.device or ("cuda" if args.mode == "gpu" else "cpu"))
    gpu = args.mode == "gpu"
    if args.tiny:
        return Plan(args.mode, dev, True, "tiny", "tiny", (2, 2.0), (2, 2.0), (2, 2.0), (2000, 64, 20), 0.5,
                    gpu, gpu, 0, 1, 1, 1, {"steps": 0, "extract": 0, "kmeans": 0}, 1e9,
                    512 if gpu else None)
    scale = args.budget_scale
    if gpu:
        return Plan("gpu", dev, False, "base", "base", (8, 15.625), (8, 15.625), (16, 10.0), (200_000, 768, 500),
                    20.0, True, True, 3, 10, 40, 4,
                    {"steps": 40 * scale, "extract": 10 * scale, "kmeans": 20 * scale}, 300 * scale, 8192)
    small = load_config(preset_path("small")).data
    b = max(1, int(small.batch_seconds // small.crop_seconds))  # the demo's batch: 16 s of 4-s crops
    return Plan("cpu", dev, False, "small", "base", (b, small.crop_seconds), (2, 4.0), (2, 4.0), (50_000, 768, 500),
                5.0, False, False, 2, 3, 15, 6,
                {"steps": 165 * scale, "extract": 40 * scale, "kmeans": 12 * scale}, 270 * scale, None)


# ---------------------------------------------------------------------------------------------
# Machine and records


def machine(dev: torch.device) -> dict[str, Any]:
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    info = {"hostname": socket.gethostname(), "cpu_model": cpu_model, "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "memory_gb": mem_gb, "device": str(dev), "gpu": None}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def versions() -> dict[str, Any]:
    v = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for mod in ("transformers", "sklearn", "jooci"):
        try:
            v[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception as e:  # a missing peer is reported in its measurement's error record
            v[mod] = f"unavailable ({type(e).__name__})"
    return v


class Recorder:
    """Appends one JSON line per record to ``out`` (so a killed run keeps what it measured)."""

    def __init__(self, out: Path, common: dict[str, Any]):
        self.out, self.common, self.records = out, common, []
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")

    def emit(self, rec: dict[str, Any]) -> dict[str, Any]:
        rec = {**rec, **self.common, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self.records.append(rec)
        with self.out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps({k: rec[k] for k in rec if k not in self.common}), flush=True)
        return rec

    def error(self, name: str, where: str) -> None:
        self.emit({"what": "error", "name": name, "where": where, "error": traceback.format_exc()[-2000:]})


# ---------------------------------------------------------------------------------------------
# Timing


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class Marks:
    """Phase boundaries inside one run: CUDA events on the GPU (read after the run's final
    synchronisation, so none is added inside the step), wall-clock on the CPU."""

    def __init__(self, dev: torch.device, counting: bool = False):
        self.cuda = dev.type == "cuda"
        self.counting = counting  # under FlopCounterMode (which cannot run weight norm in inference mode)
        self.points: list[tuple[str, Any]] = []

    def mark(self, label: str) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.points.append((label, e))
        else:
            self.points.append((label, time.perf_counter()))

    def durations(self) -> dict[str, float]:
        out = {}
        for (_, a), (label, b) in zip(self.points, self.points[1:]):
            out[label] = a.elapsed_time(b) / 1e3 if self.cuda else b - a
        return out


@dataclass
class Item:
    """One measurement: ``run(marks)`` does one repetition and returns the work it did (audio
    seconds or frames), or None for its fixed ``work``."""

    name: str
    what: str  # train_step | extract | loader | kmeans
    label: str
    run: Callable[[Marks], Any]
    shapes: dict[str, Any]
    work: float | None  # audio seconds (frames for k-means) per run
    unit: str = "audio_s"
    peers: list[str] = field(default_factory=list)  # first one is the record's `peer`
    count_flops: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    on_first: Callable[[Any], None] | None = None  # sees the first run's return value (parity checks)
    # filled in by the runner
    times: list[float] = field(default_factory=list)
    works: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)
    flops: float | None = None
    own_bytes: int = 0  # device memory this item keeps between runs (weights, optimiser state, batch)
    peak_bytes: int | None = None  # own_bytes + the largest transient of a run
    process_peak_bytes: int | None = None
    last_s: float = 0.0
    rss_after_first_mb: float | None = None  # the process's RSS high-water mark after this item's first run
    nonfinite: int = 0
    runs: int = 0

    def throughput(self) -> float | None:
        if not self.times:
            return None
        per = [w / t for w, t in zip(self.works, self.times) if t > 0]
        return statistics.median(per) if per else None


def one_run(it: Item, dev: torch.device, *, count_flops: bool, record: bool) -> None:
    marks = Marks(dev, counting=count_flops)
    cuda = dev.type == "cuda"
    sync(dev)
    if cuda:
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    counter = None
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
    t0 = time.perf_counter()
    marks.mark("start")
    with counter if counter is not None else contextlib.nullcontext():
        out = it.run(marks)
    sync(dev)
    dt = time.perf_counter() - t0
    if counter is not None:
        it.flops = float(counter.get_total_flops())
    if it.runs == 0:
        it.rss_after_first_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if it.on_first is not None:
            it.on_first(out)
    work = float(out) if isinstance(out, (int, float)) and not isinstance(out, bool) else it.work
    if out is False:
        it.nonfinite += 1
    del out  # before the memory count: what the run returned (hidden states) is not kept
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev)
        it.peak_bytes = max(it.peak_bytes or 0, peak - before + it.own_bytes)
        it.process_peak_bytes = max(it.process_peak_bytes or 0, peak)
        it.own_bytes += torch.cuda.memory_allocated(dev) - before
    it.runs += 1
    it.last_s = dt
    if record:
        it.times.append(dt)
        it.works.append(work)
        for k, v in marks.durations().items():
            it.phases.setdefault(k, []).append(v)


def run_group(items: list[Item], plan: Plan, budget: float, t_start: float, rec: Recorder) -> list[Item]:
    """Warm-up rounds (FLOPs counted on the first), then alternating timed rounds: as many as fit
    ``budget`` seconds (between plan.min_reps and plan.max_reps). Items that fail are reported and
    dropped; the others go on."""
    dev = plan.device

    def guarded(it: Item, **kw) -> bool:
        try:
            one_run(it, dev, **kw)
            return True
        except Exception:
            rec.error(it.name, "run")
            return False

    for w in range(plan.warm):
        items = [it for it in items if guarded(it, count_flops=w == 0 and it.count_flops, record=False)]
    if not items:
        return items
    cost = {it.name: max(it.last_s, 1e-6) for it in items}  # the last warm-up run (1 us without warm-up)
    top = max(cost.values())
    inner = {n: max(1, min(plan.max_inner, int(0.25 * top / c))) for n, c in cost.items()}
    round_s = sum(inner[it.name] * cost[it.name] for it in items)
    # never past the run's deadline (then the minimum only)
    budget = min(budget, max(0.0, plan.deadline_s - (time.perf_counter() - t_start)))
    reps = max(plan.min_reps, min(plan.max_reps, int(budget / round_s)))
    print(f"# group {[it.name for it in items]}: {reps} rounds of ~{round_s:.2f} s, inner {inner}", flush=True)
    for r in range(reps):
        for it in list(items):
            for i in range(inner[it.name]):
                # no warm-up (the tiny smoke mode): FLOPs are counted on the first timed run
                flops = plan.warm == 0 and r == 0 and i == 0 and it.count_flops
                if not guarded(it, count_flops=flops, record=True):
                    items.remove(it)
                    break
    return items


# ---------------------------------------------------------------------------------------------
# Records


def stats(times: list[float]) -> dict[str, Any]:
    return {"repeats": len(times), "median_s": round(statistics.median(times), 6), "min_s": round(min(times), 6),
            "mean_s": round(statistics.fmean(times), 6), "max_s": round(max(times), 6),
            "all_s": [round(t, 6) for t in times]}


def record_of(it: Item, by_name: dict[str, Item], plan: Plan, peak_flops: float | None) -> dict[str, Any]:
    r: dict[str, Any] = {"what": it.what, "name": it.name, "label": it.label, "shapes": it.shapes,
                         "dtype": "fp32 (numpy)" if it.what == "kmeans" else plan.dtype, **it.info}
    t = stats(it.times)
    r["timing"] = t
    thr = it.throughput()
    r["throughput"] = {"value": round(thr, 3), "unit": f"{it.unit}/s"} if thr else None
    if it.what == "train_step":
        r["steps_per_s"] = round(1.0 / t["median_s"], 4)
        r["phases_median_s"] = {k: round(statistics.median(v), 6) for k, v in it.phases.items()}
        r["nonfinite_steps"] = it.nonfinite
    if it.flops is not None:
        r["flops"] = it.flops
        r["tflop_per_s"] = round(it.flops / t["median_s"] / 1e12, 4)
        if peak_flops:
            r["mfu"] = round(it.flops / t["median_s"] / peak_flops, 4)
    if it.peak_bytes is not None:
        r["memory"] = {"cuda_peak_gb": round(it.peak_bytes / 2**30, 3),
                       "cuda_process_peak_gb": round((it.process_peak_bytes or 0) / 2**30, 3),
                       "note": "cuda_peak_gb: this item's resident tensors + its largest transient; "
                               "process: torch.cuda.max_memory_allocated with the group's other models resident"}
        if it.work:
            r["memory"]["cuda_peak_gb_per_audio_s"] = round(it.peak_bytes / 2**30 / it.work, 5)
    else:
        r["memory"] = {"rss_peak_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                       "rss_peak_mb_after_first_run": round(it.rss_after_first_mb or 0.0, 1),
                       "note": "the process's RSS high-water mark: now, and after this item's first run (every "
                               "model of the group is built by then; groups run in turn: steps, extract, kmeans)"}
    peers = []
    for p in it.peers:
        peer = by_name.get(p)
        if peer is None or not peer.times:
            peers.append({"peer": p, "ratio": None, "missing": True})
            continue
        pt, pthr = statistics.median(peer.times), peer.throughput()
        entry = {"peer": p, "peer_label": peer.label, "peer_median_s": round(pt, 6),
                 "peer_throughput": round(pthr, 3) if pthr else None,
                 "ratio": round(thr / pthr, 4) if thr and pthr else None}
        if it.shapes == peer.shapes and it.what == peer.what:
            entry["time_ratio"] = round(t["median_s"] / pt, 4)  # same work: our time / the peer's
            fb = ("forward", "backward")
            if all(k in it.phases and k in peer.phases for k in fb):
                ours = sum(statistics.median(it.phases[k]) for k in fb)
                theirs = sum(statistics.median(peer.phases[k]) for k in fb)
                entry["fwd_bwd_time_ratio"] = round(ours / theirs, 4)
        peers.append(entry)
    r["peer"] = peers[0]["peer"] if peers else None
    r["ratio"] = peers[0]["ratio"] if peers else None
    r["ratio_means"] = ("this item's throughput / the peer's (> 1: faster than the peer)" if it.what != "loader"
                        else "audio-s/s delivered / audio-s/s the peer step consumes (>= 3: the target)")
    r["peers"] = peers
    return r


# ---------------------------------------------------------------------------------------------
# Builders


def shipped(preset: str) -> PretrainConfig:
    return load_config(preset_path(preset))


def random_batch(cfg: PretrainConfig, b: int, seconds: float, dev: torch.device, seed: int = 0) -> Batch:
    samples = int(SAMPLE_RATE * seconds)
    frames = samples // HOP
    g = torch.Generator().manual_seed(seed)
    labels = {f"k{k}": torch.randint(0, k, (b, frames), generator=g) for k in cfg.model.clusters.num_clusters}
    batch = Batch(waveforms=0.1 * torch.randn(b, samples, generator=g), lengths=torch.full((b,), samples),
                  ids=[f"u{i}" for i in range(b)], offsets=torch.zeros(b, dtype=torch.long), labels=labels,
                  label_lengths={k: torch.full((b,), frames) for k in labels},
                  speakers=[None] * b, styles=[None] * b)
    return batch.to(dev)


def adamw(cfg: PretrainConfig, params: list[nn.Parameter], fused: bool) -> torch.optim.AdamW:
    """The loop's optimiser: AdamW, no weight decay on 1-D tensors (biases, norms)."""
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-4, betas=cfg.optim.betas, eps=cfg.optim.eps, fused=fused)


def train_item(name: str, label: str, owner: nn.Module, forward: Callable[[], torch.Tensor], cfg: PretrainConfig,
               plan: Plan, shape: tuple[int, float], peers: list[str], after_step: Callable[[], None] | None = None,
               info: dict | None = None) -> Item:
    """One optimiser step of ``forward()``'s loss, with the loop's machinery around it."""
    params = [p for p in owner.parameters() if p.requires_grad]
    opt = adamw(cfg, params, plan.fused_adamw)

    def run(marks: Marks) -> bool:
        with plan.autocast():
            loss = forward()
        marks.mark("forward")
        loss.backward()
        marks.mark("backward")
        value = loss.item()  # the loop reads every step's loss
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip)
        finite = math.isfinite(value) and math.isfinite(float(grad_norm))
        opt.step()
        opt.zero_grad(set_to_none=True)
        if after_step is not None:
            after_step()
        marks.mark("optimizer")
        return finite

    b, s = shape
    meta = {"params_m": round(sum(p.numel() for p in params) / 1e6, 3), "fused_adamw": plan.fused_adamw}
    return Item(name, "train_step", label, run, {"batch": b, "seconds": s}, b * s, peers=peers,
                info={**meta, **(info or {})})


def phase_forward(module: PhaseModule, batch: Batch, cfg: PretrainConfig) -> Callable[[], torch.Tensor]:
    names = tuple(f"k{k}" for k in cfg.model.clusters.num_clusters)
    counter = itertools.count()

    def forward() -> torch.Tensor:
        step = next(counter)
        ctx = S.StepContext(losses=cfg.losses, generator=torch.Generator().manual_seed(step), seed=0, step=step,
                            label_names=names, rdino_weight=cfg.losses.rdino_weight[1])
        return module(batch, ctx).loss

    return forward


def hf_config(cfg: PretrainConfig):
    """HF ``HubertConfig`` of the preset's Content shape: HF's defaults for base (the peer as
    ../shared/bench timed it), the same fields at the preset's sizes otherwise."""
    import transformers

    if cfg.preset == "base":
        return transformers.HubertConfig()
    f, t = cfg.model.frontend, cfg.model.content.transformer
    if f.kind != "cnn":
        raise ValueError(f"preset {cfg.preset}: HF HubertModel has no {f.kind} frontend to compare with")
    return transformers.HubertConfig(
        hidden_size=t.dim, num_hidden_layers=t.num_layers, num_attention_heads=t.num_heads, intermediate_size=t.ffn_dim,
        conv_dim=[c for c, _, _ in f.conv_layers], conv_kernel=[k for _, k, _ in f.conv_layers],
        conv_stride=[s for _, _, s in f.conv_layers], num_conv_pos_embeddings=t.pos_conv_kernel,
        num_conv_pos_embedding_groups=t.pos_conv_groups)


def hf_frames(hf_cfg, samples: int) -> int:
    n = samples
    for k, s in zip(hf_cfg.conv_kernel, hf_cfg.conv_stride):
        n = (n - k) // s + 1
    return n


def load_hf_weights(target: nn.Module, converted: HuBERTBaseline) -> bool:
    """Frontend and Content of ``target`` from the HF-converted baseline; False where they do not fit."""
    try:
        target.frontend.load_state_dict(converted.frontend.state_dict())
        target.content.load_state_dict(converted.content.state_dict())
        return True
    except RuntimeError:
        return False


def build_step_group(plan: Plan, rec: Recorder) -> list[Callable[[], Item | None]]:
    """Builders of the step group: Content step vs HF on the HF shape, the four kinds, the loader."""
    import transformers

    dev = plan.device
    hcfg, scfg = shipped(plan.hf_preset), shipped(plan.step_preset)
    same = plan.hf_preset == plan.step_preset and plan.hf_shape == plan.step_shape
    hf_name = f"hf_step.{plan.hf_preset}"
    tag = plan.step_preset
    shared: dict[str, Any] = {}

    def hf_step() -> Item:
        torch.manual_seed(0)
        hc = hf_config(hcfg)
        hf = transformers.HubertModel(hc)
        shared["hf_state"] = copy.deepcopy(hf)  # on the CPU, for the Content step's weights
        peer = nn.ModuleDict({"hubert": hf, "head": nn.Linear(hc.hidden_size, HF_CLASSES)}).to(dev).train()
        b, s = plan.hf_shape
        wav = random_batch(hcfg, b, s, dev, seed=1).waveforms
        tgt = torch.randint(0, HF_CLASSES, (b, hf_frames(hc, wav.shape[1])), generator=torch.Generator().manual_seed(2))
        tgt = tgt.to(dev)

        def forward() -> torch.Tensor:
            logits = peer["head"](peer["hubert"](wav).last_hidden_state)
            return nn.functional.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten())

        return train_item(hf_name, f"HF HubertModel + {HF_CLASSES}-way CE ({plan.hf_preset} shape)", peer, forward,
                          hcfg, plan, plan.hf_shape, [],
                          info={"model": "transformers.HubertModel", "attn": getattr(hf.config, "_attn_implementation", None)})

    def content_hf_shape() -> Item:
        from jooci.models.convert import from_hf_hubert

        m = hcfg.model
        model = HuBERTBaseline(BaselineConfig(m.frontend, m.content, m.clusters))
        hf = shared.pop("hf_state", None)
        same_weights = hf is not None and load_hf_weights(model, from_hf_hubert(hf))
        module = PhaseModule("content", model, None, None).to(dev).train()
        batch = random_batch(hcfg, *plan.hf_shape, dev, seed=1)
        return train_item(f"content_step.{plan.hf_preset}", f"jooci baseline Content step ({plan.hf_preset})",
                          module, phase_forward(module, batch, hcfg), hcfg, plan, plan.hf_shape, [hf_name],
                          info={"preset": plan.hf_preset, "same_weights_as_peer": same_weights})

    def content_small() -> Item:
        m = scfg.model
        module = PhaseModule("content", HuBERTBaseline(BaselineConfig(m.frontend, m.content, m.clusters)),
                             None, None).to(dev).train()
        batch = random_batch(scfg, *plan.step_shape, dev)
        return train_item(f"content_step.{tag}", f"jooci baseline Content step ({tag})", module,
                          phase_forward(module, batch, scfg), scfg, plan, plan.step_shape, [hf_name],
                          info={"preset": tag})

    def teacher() -> Item:
        student = SpeakerModel(scfg.teacher)
        ema = copy.deepcopy(student).requires_grad_(False)
        center = DINOCenter(scfg.teacher.head.out_dim, scfg.losses.center_momentum)
        module = PhaseModule("teacher", student, ema, center).to(dev).train()
        ema.to(dev).train(True)  # the loop: batch statistics in the EMA teacher of the teacher phase
        center.center = center.center.to(dev)
        batch = random_batch(scfg, *plan.step_shape, dev)
        momentum = scfg.losses.ema_momentum[0]
        return train_item(f"teacher_step.{tag}", f"RDINO teacher step ({tag})", module,
                          phase_forward(module, batch, scfg), scfg, plan, plan.step_shape, [hf_name],
                          after_step=lambda: ema_update_(ema, student, momentum), info={"preset": tag})

    def jooci_phase(phase: str) -> Item:
        model = JOOCI(scfg.model)
        frozen_teacher = SpeakerModel(scfg.teacher).requires_grad_(False)
        center = DINOCenter(scfg.teacher.head.out_dim, scfg.losses.center_momentum)
        sch = scfg.schedule
        if phase == "phase1":  # as build_phase_models freezes it
            names = (("content", "cluster_heads") if sch.freeze_content_phase1 else ()) + \
                (("frontend",) if sch.freeze_frontend_phase1 else ())
            for n in names:
                getattr(model, n).requires_grad_(False)
        if scfg.losses.regulariser == 0:
            model.regulariser.requires_grad_(False)
        if model.mel_decoder is not None and scfg.losses.reconstruction == 0:
            model.mel_decoder.requires_grad_(False)
        module = PhaseModule(phase, model, frozen_teacher, center,
                             joint_phase1=not sch.freeze_content_phase1).to(dev).train()
        frozen_teacher.to(dev).train(False)
        center.center = center.center.to(dev)
        batch = random_batch(scfg, *plan.step_shape, dev)
        title = "JOOCI phase 1 (Other; Content frozen)" if phase == "phase1" else "JOOCI phase 2 (joint)"
        return train_item(f"{phase}_step.{tag}", f"{title} ({tag})", module, phase_forward(module, batch, scfg),
                          scfg, plan, plan.step_shape, [hf_name], info={"preset": tag})

    def loader() -> Item:
        return loader_item(plan, scfg, [f"content_step.{tag}", f"phase2_step.{tag}"], rec)

    builders: list[Callable[[], Item]] = [hf_step, content_hf_shape]
    if not same:
        builders.append(content_small)
    builders += [teacher, lambda: jooci_phase("phase1"), lambda: jooci_phase("phase2"), loader]
    return builders


# --- the data loader


def noise_corpus(folder: Path, minutes: float, seed: int = 0) -> list[Utterance]:
    """Random-noise WAVs of 1-6 s (the loader's work does not depend on what the audio says)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    utts, total, i = [], 0.0, 0
    while total < minutes * 60:
        n = int(rng.uniform(1.0, 6.0) * SAMPLE_RATE)
        path = folder / "wav" / f"n{i:05d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        utts.append(Utterance(id=f"n{i:05d}", path=str(path), num_samples=n))
        total += n / SAMPLE_RATE
        i += 1
    write_manifest(utts, folder / "pretrain.jsonl")
    return read_manifest(folder / "pretrain.jsonl")


def corpus(plan: Plan, folder: Path) -> tuple[list[Utterance], dict[str, Any]]:
    t0 = time.perf_counter()
    try:
        from jooci.data.synth import SynthConfig, synthesize

        out = synthesize(folder / "synth", SynthConfig(minutes=plan.corpus_minutes, seed=0),
                         workers=min(8, os.cpu_count() or 1), progress=False)
        utts = [u for name in ("pretrain.jsonl", "train.jsonl", "dev.jsonl") for u in read_manifest(out / name)]
        kind = "JOOCI-synth"
    except Exception as e:  # no synth extra (espeak-ng) on this machine: noise WAVs do the same work
        utts = noise_corpus(folder / "noise", plan.corpus_minutes)
        kind = f"noise WAVs (synthesize failed: {type(e).__name__}: {str(e)[:120]})"
    secs = sum(u.num_samples for u in utts) / SAMPLE_RATE
    return utts, {"corpus": kind, "corpus_utterances": len(utts), "corpus_minutes": round(secs / 60, 2),
                  "corpus_build_s": round(time.perf_counter() - t0, 2)}


def loader_item(plan: Plan, cfg: PretrainConfig, consumers: list[str], rec: Recorder) -> Item:
    folder = Path(plan_tmp.name)
    utts, info = corpus(plan, folder)
    rng = np.random.default_rng(0)
    labels = {f"k{k}": [rng.integers(0, k, u.num_samples // HOP).tolist() for u in utts]
              for k in cfg.model.clusters.num_clusters}
    d = cfg.data
    b, s = plan.step_shape
    batch_seconds = b * s  # what the measured steps take per batch
    workers = d.num_workers
    loader, sampler = make_loader(utts, max_seconds=batch_seconds, min_samples=int(d.min_seconds * SAMPLE_RATE),
                                  max_samples=int(d.crop_seconds * SAMPLE_RATE), labels=labels, label_rate=50,
                                  num_workers=workers, seed=0)
    dev = plan.device
    epoch = itertools.count()

    def run(marks: Marks) -> float:
        sampler.set_epoch(next(epoch))
        audio = 0.0
        for batch in loader:
            batch = batch.to(dev)  # as the loop does
            audio += float(batch.lengths.sum()) / SAMPLE_RATE
        return audio

    return Item(f"loader.{cfg.preset}", "loader", f"make_loader, one epoch ({cfg.preset} data settings)", run,
                {"batch_seconds": batch_seconds, "crop_seconds": d.crop_seconds, "num_workers": workers,
                 "label_sets": len(labels)}, None, peers=consumers, count_flops=False,
                info={**info, "pin_memory": dev.type == "cuda" and torch.cuda.is_available()})


plan_tmp: Any = None  # the run's temporary folder (corpus)


# --- extraction


def inference(marks: Marks):
    """inference_mode, as extraction runs; no_grad on the FLOP-counting run (FlopCounterMode
    cannot evaluate a weight-norm parametrisation inside inference_mode; the FLOPs are the same)."""
    return torch.no_grad() if marks.counting else torch.inference_mode()


def build_extract_group(plan: Plan) -> tuple[list[Callable[[], Item]], dict]:
    import transformers
    from jooci.models.convert import from_hf_hubert

    dev = plan.device
    cfg = shipped(plan.hf_preset)
    b, s = plan.extract_shape
    shapes = {"batch": b, "seconds": s}
    x = random_batch(cfg, b, s, dev, seed=3)
    wav, lengths = x.waveforms, x.lengths
    shared: dict[str, Any] = {}
    hf_name = f"extract.hf.{plan.hf_preset}"

    def keep_last(key: str, pick: Callable[[Any], torch.Tensor]) -> Callable[[Any], None]:
        def on_first(out: Any) -> None:
            shared[key] = pick(out).float().cpu().clone()
        return on_first

    def hf() -> Item:
        torch.manual_seed(0)
        hc = hf_config(cfg)
        model = transformers.HubertModel(hc)
        shared["converted"] = from_hf_hubert(model)
        model.to(dev).eval()

        def run(marks: Marks):
            with inference(marks), plan.autocast():
                return model(wav, output_hidden_states=True).hidden_states[-1]

        return Item(hf_name, "extract", f"HF HubertModel, all hidden states ({plan.hf_preset})", run, shapes, b * s,
                    on_first=keep_last("hf", lambda t: t),
                    info={"model": "transformers.HubertModel", "hidden_states": hc.num_hidden_layers + 1})

    def ours(kind: str) -> Item:
        m = cfg.model
        model = HuBERTBaseline(BaselineConfig(m.frontend, m.content, m.clusters)) if kind == "baseline" else JOOCI(m)
        conv = shared.get("converted")
        same_weights = conv is not None and load_hf_weights(model, conv)
        model.to(dev).eval()

        def run(marks: Marks):
            with inference(marks), plan.autocast():
                return model.extract_features(wav, lengths)

        it = Item(f"extract.{kind}.{plan.hf_preset}", "extract",
                  f"jooci {'baseline' if kind == 'baseline' else 'JOOCI'} extract_features ({plan.hf_preset})",
                  run, shapes, b * s, peers=[hf_name],
                  on_first=keep_last(kind, lambda out: out.content_states[-1]),
                  info={"same_weights_as_peer": same_weights, "hidden_states": model.num_hidden_states})
        return it

    return [hf, lambda: ours("baseline"), lambda: ours("jooci")], shared


# --- k-means labelling


def build_kmeans_group(plan: Plan) -> tuple[list[Callable[[], Item]], dict]:
    from jooci.targets.kmeans import assign

    n, d, k = plan.kmeans_shape
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((k, d)).astype(np.float32)
    x = (centroids[rng.integers(0, k, n)] + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    shapes = {"frames": n, "dim": d, "clusters": k}
    shared: dict[str, Any] = {}

    def fitted():
        from sklearn.cluster import MiniBatchKMeans

        # a few steps from these centroids on a sample (sets its fitted state), then the centroids put back
        km = MiniBatchKMeans(n_clusters=k, init=centroids, n_init=1, max_iter=10, batch_size=1024, random_state=0,
                             compute_labels=False).fit(x[: max(4 * k, 4096)])
        km.cluster_centers_ = centroids.copy()
        return km

    def sk() -> Item:
        km = fitted()
        import sklearn

        def run(marks: Marks) -> int:
            km.predict(x)
            return n

        return Item("kmeans.sklearn", "kmeans", "scikit-learn MiniBatchKMeans.predict", run, shapes, n, unit="frames",
                    count_flops=False, info={"sklearn": sklearn.__version__})

    def jo() -> Item:
        def run(marks: Marks) -> int:
            assign(x, centroids)
            return n

        return Item("kmeans.jooci", "kmeans", "jooci.targets.kmeans.assign", run, shapes, n, unit="frames",
                    peers=["kmeans.sklearn"], count_flops=False)

    # the label agreement check runs once, outside the timing
    def agreement() -> float:
        sub = x[: min(n, 20000)]
        return float((fitted().predict(sub) == assign(sub, centroids)).mean())

    shared["agreement"] = agreement
    return [sk, jo], shared


# ---------------------------------------------------------------------------------------------
# Profiles


def profile_items(items: list[Item], plan: Plan, stem: Path) -> None:
    """A torch.profiler summary of each item (after its timing): the top 15 ops by self time and,
    on the GPU, the host/device gap (kernel time vs wall time of the profiled runs)."""
    from torch.profiler import ProfilerActivity, profile

    dev = plan.device
    cuda = dev.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    n = 3 if cuda else 1
    for it in items:
        try:
            sync(dev)
            with profile(activities=acts) as prof:
                t0 = time.perf_counter()
                for _ in range(n):
                    it.run(Marks(dev))
                sync(dev)
                wall = (time.perf_counter() - t0) / n
            ka = prof.key_averages()

            def dev_self(e) -> float:  # microseconds
                return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) or 0.0)

            key = "self_device_time_total" if cuda else "self_cpu_time_total"
            rows = sorted(ka, key=(dev_self if cuda else (lambda e: e.self_cpu_time_total)), reverse=True)[:15]
            top = [{"op": e.key, "calls": e.count // n, "self_cpu_ms": round(e.self_cpu_time_total / 1e3 / n, 3),
                    "self_device_ms": round(dev_self(e) / 1e3 / n, 3)} for e in rows]
            summary = {"name": it.name, "label": it.label, "runs_profiled": n, "wall_ms_per_run": round(wall * 1e3, 3),
                       "sorted_by": key, "top15": top}
            if cuda:
                from torch.autograd import DeviceType

                # the kernels' own rows (kineto), as the profiler's table totals them
                kernel = sum(dev_self(e) for e in ka if e.device_type == DeviceType.CUDA
                             and not getattr(e, "is_user_annotation", False)) / 1e3 / n
                summary.update(device_busy_ms_per_run=round(kernel, 3),
                               device_idle_fraction=round(max(0.0, 1 - kernel / (wall * 1e3)), 4),
                               note="busy: the summed time of the device's kernels and copies; wall: the profiled "
                                    "runs (the profiler adds host time, so the idle share is an upper bound)")
            with open(f"{stem}.profile.jsonl", "a") as f:
                f.write(json.dumps(summary) + "\n")
            with open(f"{stem}.profile.txt", "a") as f:
                f.write(f"== {it.name}: {it.label}; wall {wall * 1e3:.1f} ms per run")
                if cuda:
                    f.write(f", device busy {summary['device_busy_ms_per_run']:.1f} ms "
                            f"(idle {100 * summary['device_idle_fraction']:.1f} %)")
                f.write("\n" + ka.table(sort_by=key, row_limit=15) + "\n\n")
        except Exception:
            with open(f"{stem}.profile.txt", "a") as f:
                f.write(f"== {it.name}: profiling failed\n{traceback.format_exc()[-1500:]}\n\n")


# ---------------------------------------------------------------------------------------------
# The table


def fmt_ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def table(records: list[dict], plan: Plan, mach: dict, vers: dict, wall: float) -> str:
    date = records[0]["date"] if records else ""
    lines = [f"# jooci benchmark, {plan.mode} mode{' (tiny)' if plan.tiny else ''}", "",
             f"Machine: {mach['hostname']}, {mach['cpu_model']}, {mach['cores']} cores "
             f"({mach['torch_threads']} torch threads), {mach['memory_gb']} GiB"
             + (f", {mach['gpu']} ({mach.get('gpu_memory_gb')} GiB, CUDA {mach.get('cuda')})" if mach.get("gpu") else ", no GPU")
             + f". torch {vers['torch']}, transformers {vers.get('transformers')}, Python {vers['python']}. "
             f"Date: {date}. Precision: {plan.dtype}. Whole run: {wall:.0f} s.", "",
             "Times are the median (min) of the alternating repeats after warm-up. Ratio: this row's "
             "throughput / the peer's (> 1 is faster than the peer); for the loader, audio delivered per "
             "second / audio the peer step consumes per second.", "",
             "| measurement | shapes | median ms (min) | n | throughput | steps/s | TFLOP/s | MFU | peak mem | peer | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r.get("what") not in ("train_step", "extract", "loader", "kmeans"):
            continue
        t = r["timing"]
        shapes = ", ".join(f"{k} {v}" for k, v in r["shapes"].items())
        thr = r.get("throughput") or {}
        mem = r.get("memory", {})
        peak = (f"{mem['cuda_peak_gb']:.2f} GB" if "cuda_peak_gb" in mem
                else f"{mem['rss_peak_mb_after_first_run']:.0f} MB RSS*" if "rss_peak_mb_after_first_run" in mem else "")
        mfu = f"{100 * r['mfu']:.1f} %" if "mfu" in r else ""
        tfl = f"{r['tflop_per_s']:.3g}" if "tflop_per_s" in r else ""
        sps = f"{r['steps_per_s']:.3g}" if "steps_per_s" in r else ""
        peers = r.get("peers") or [{}]
        for i, p in enumerate(peers):
            ratio = f"{p['ratio']:.2f}×" if p.get("ratio") is not None else ("–" if not p else "n/a")
            if p.get("time_ratio") is not None:
                ratio += f" (time {p['time_ratio']:.2f}×"
                ratio += f", fwd+bwd {p['fwd_bwd_time_ratio']:.2f}×)" if "fwd_bwd_time_ratio" in p else ")"
            head = (f"| {r['label']} | {shapes} | {fmt_ms(t['median_s'])} ({fmt_ms(t['min_s'])}) | {t['repeats']} | "
                    f"{thr.get('value', '')} {thr.get('unit', '')} | {sps} | {tfl} | {mfu} | {peak} |") if i == 0 \
                else "| ″ | | | | | | | | |"
            lines.append(f"{head} {p.get('peer', '–')} | {ratio} |")
    lines += ["", "*RSS: the process's high-water mark after the row's first run (its group's models all built "
              "by then), not the row's own footprint.", ""]
    for r in records:
        if r.get("what") in ("error",):
            lines.append(f"- error in {r['name']} ({r['where']}): {r['error'].strip().splitlines()[-1]}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global plan_tmp
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--out", type=Path, required=True, help="FILE.jsonl; FILE.md gets the table")
    p.add_argument("--device", default=None, help="default: cuda in gpu mode, cpu in cpu mode")
    p.add_argument("--tiny", action="store_true", help="tiny preset, one repeat of everything (smoke test)")
    p.add_argument("--profile", action="store_true", help="a torch.profiler summary per measurement")
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiplies the time budgets")
    p.add_argument("--only", nargs="*", default=None, choices=("steps", "extract", "kmeans"),
                   help="run only these groups")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    plan = make_plan(args)
    if plan.device.type == "cuda" and not torch.cuda.is_available():
        print("error: --mode gpu needs CUDA (or --device cpu to exercise the GPU branch on a CPU)", file=sys.stderr)
        return 2
    stem = args.out.with_suffix("")
    for suffix in (".profile.txt", ".profile.jsonl"):
        Path(f"{stem}{suffix}").unlink(missing_ok=True)
    mach, vers = machine(plan.device), versions()
    rec = Recorder(args.out, {"mode": plan.mode + (" tiny" if plan.tiny else ""), "machine": mach, "versions": vers})
    rec.emit({"what": "env", "plan": {k: (str(v) if isinstance(v, torch.device) else v)
                                      for k, v in vars(plan).items()}, "argv": sys.argv[1:],
              "loadavg_start": os.getloadavg()})
    plan_tmp = tempfile.TemporaryDirectory(prefix="jooci-bench-")
    peak_flops = None
    if plan.matmul_n:
        try:
            n = plan.matmul_n
            a = torch.randn(n, n, device=plan.device, dtype=torch.bfloat16)
            for _ in range(3):
                a @ a
            sync(plan.device)
            t0 = time.perf_counter()
            for _ in range(20):
                a @ a
            sync(plan.device)
            sec = (time.perf_counter() - t0) / 20
            peak_flops = 2 * n**3 / sec
            rec.emit({"what": "matmul_peak", "name": f"bf16_matmul_{n}", "tflop_per_s": round(peak_flops / 1e12, 2),
                      "note": "MFU is measured against this (the card's bf16 matmul rate, measured now)"})
            del a
        except Exception:
            rec.error("matmul_peak", "run")

    groups = args.only or ["steps", "extract", "kmeans"]
    try:
        for g in groups:
            t_group = time.perf_counter()
            shared: dict[str, Any] = {}
            if g == "steps":
                builders = build_step_group(plan, rec)
            elif g == "extract":
                builders, shared = build_extract_group(plan)
            else:
                builders, shared = build_kmeans_group(plan)
            items: list[Item] = []
            for build in builders:
                before = torch.cuda.memory_allocated(plan.device) if plan.device.type == "cuda" else 0
                try:
                    it = build()
                except Exception:
                    rec.error(getattr(build, "__name__", g), "build")
                    continue
                if plan.device.type == "cuda":
                    it.own_bytes = torch.cuda.memory_allocated(plan.device) - before
                items.append(it)
            print(f"# {g}: built {len(items)} items in {time.perf_counter() - t_group:.1f} s", flush=True)
            items = run_group(items, plan, plan.budgets.get(g, 0.0), t_start, rec)
            by_name = {it.name: it for it in items}
            if g == "extract":
                for it in items:
                    key = it.name.split(".")[1]
                    if it.peers and key in shared and "hf" in shared and shared[key].shape == shared["hf"].shape:
                        it.info["max_abs_diff_vs_peer_last_content_state"] = float((shared[key] - shared["hf"]).abs().max())
            if g == "kmeans" and "kmeans.jooci" in by_name:
                with contextlib.suppress(Exception):
                    by_name["kmeans.jooci"].info["label_agreement_with_peer"] = round(shared["agreement"](), 6)
            for it in items:
                rec.emit(record_of(it, by_name, plan, peak_flops))
            if args.profile:
                profile_items(items, plan, stem)
            del items, by_name, builders, shared
            if plan.device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        plan_tmp.cleanup()
    wall = time.perf_counter() - t_start
    rec.emit({"what": "summary", "wall_s": round(wall, 1), "loadavg_end": os.getloadavg(),
              "records": len(rec.records)})
    md = table(rec.records, plan, mach, vers, wall)
    args.out.with_suffix(".md").write_text(md)
    print("\n" + md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
