"""Training-step and extraction throughput of jooci's models against HF HuBERT, in one process.

What is timed is what ``jooci pretrain`` runs per step: the phase's step function (masking, the
model, every loss term and its logged metrics) under the loop's precision, backward, gradient
clipping and a fused AdamW step; the peer is HF ``HubertModel`` (random init, sdpa attention) with
a 504-way head and cross-entropy on every frame, the step ``../shared/bench`` timed. Same batch
(random audio and labels), same card, same precision, measured in this run, so the ratios hold
even on a shared, noisy machine.

    python benchmarks/gpu_step.py --out gpu_step.json             # on a GPU (base preset)
    python benchmarks/gpu_step.py --device cpu --preset tiny --batch 2 --seconds 2 --reps 2   # smoke

Prints one JSON line per measurement and writes them all to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import torch
from torch import nn

from jooci.data.dataset import Batch
from jooci.losses.dino import DINOCenter
from jooci.models import JOOCI, HuBERTBaseline, SpeakerModel
from jooci.models.baseline import BaselineConfig
from jooci.train import steps as S
from jooci.train.config import load_config
from jooci.train.loop import PhaseModule

results: list[dict] = []


def emit(out: Path | None, **kw) -> None:
    results.append(kw)
    print(json.dumps(kw), flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=1))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, warm: int, reps: int) -> float:
    for _ in range(warm):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / reps


def flops_of(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def make_batch(cfg, b: int, samples: int, device: torch.device) -> Batch:
    frames = samples // 320
    g = torch.Generator().manual_seed(0)
    labels = {f"k{k}": torch.randint(0, k, (b, frames), generator=g) for k in cfg.model.clusters.num_clusters}
    batch = Batch(waveforms=0.1 * torch.randn(b, samples, generator=g), lengths=torch.full((b,), samples),
                  ids=[f"u{i}" for i in range(b)], offsets=torch.zeros(b, dtype=torch.long), labels=labels,
                  label_lengths={k: torch.full((b,), frames) for k in labels})
    return batch.to(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="base")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=15.625)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warm", type=int, default=3)
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--skip", nargs="*", default=[], help="measurements to leave out")
    args = p.parse_args()
    dev = torch.device(args.device)
    out = args.out
    cfg = load_config(None, [f"preset={args.preset}", "losses.mpl_unmasked=0"])
    emit(out, what="env", torch=torch.__version__, device=torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
         preset=args.preset, batch=args.batch, seconds=args.seconds, precision=args.precision)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    peak = None
    if dev.type == "cuda":
        a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
        s = timed(lambda: a @ a, dev, 3, 20)
        peak = 2 * 8192**3 / s
        emit(out, what="bf16_matmul_8192", tflops=round(peak / 1e12, 1))
        del a

    samples = int(16000 * args.seconds)
    batch = make_batch(cfg, args.batch, samples, dev)
    audio = args.batch * args.seconds

    def bench_train(name: str, module: nn.Module, step_fn) -> None:
        params = [q for q in module.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, fused=dev.type == "cuda")

        def step() -> None:
            with autocast:
                loss = step_fn()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sec = timed(step, dev, args.warm, args.reps)
        rec = dict(what="train_step", model=name, params_m=round(sum(q.numel() for q in params) / 1e6, 2),
                   step_s=round(sec, 4), audio_s_per_s=round(audio / sec, 1))
        if dev.type == "cuda":
            rec["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
            try:
                with autocast:
                    fl = flops_of(lambda: step_fn().backward())
                opt.zero_grad(set_to_none=True)
                rec["tflops_step"] = round(fl / 1e12, 2)
                rec["mfu"] = round(fl / sec / peak, 3)
            except Exception as e:  # the FLOP counter is a nicety; the timing stands without it
                rec["flops_error"] = repr(e)[:200]
        emit(out, **rec)

    def ctx(step: int = 0) -> S.StepContext:
        return S.StepContext(losses=cfg.losses, generator=torch.Generator().manual_seed(step), step=step,
                             label_names=tuple(f"k{k}" for k in cfg.model.clusters.num_clusters))

    m = cfg.model
    todo = {
        "baseline_content": lambda: PhaseModule("content", HuBERTBaseline(BaselineConfig(m.frontend, m.content, m.clusters)),
                                                None, None),
        "teacher": lambda: _teacher_module(cfg),
        "jooci_phase1": lambda: _jooci_module(cfg, "phase1"),
        "jooci_phase2": lambda: _jooci_module(cfg, "phase2"),
    }
    for name, build in todo.items():
        if name in args.skip:
            continue
        try:
            module = build().to(dev).train()
            if module.teacher is not None:
                module.teacher.to(dev).train(name == "teacher")
                module.center.center = module.center.center.to(dev)
            counter = iter(range(10**6))
            bench_train(name, module, lambda m=module: m(batch, ctx(next(counter))).loss)
            del module
        except Exception:
            emit(out, what="error", model=name, err=traceback.format_exc()[-1500:])
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    if "hf" not in args.skip:
        try:
            import transformers

            hf = transformers.HubertModel(transformers.HubertConfig()) if args.preset == "base" else None
            if hf is not None:
                head = nn.Linear(768, 504)
                peer = nn.ModuleDict({"m": hf, "head": head}).to(dev).train()
                g = torch.Generator().manual_seed(1)
                tgt = torch.randint(0, 504, (args.batch, samples // 320), generator=g).to(dev)

                def hf_loss():
                    logits = peer["head"](peer["m"](batch.waveforms).last_hidden_state)
                    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), tgt[:, :logits.shape[1]].flatten(0, 1))

                bench_train("hf_hubert_base (peer)", peer, hf_loss)
                del peer
        except Exception:
            emit(out, what="error", model="hf_hubert_base", err=traceback.format_exc()[-1500:])

    # Extraction: every hidden state of 16 x 10 s, no grad (the s3prl upstream's job).
    xb, xs = (16, 10.0) if dev.type == "cuda" else (2, 2.0)
    x = 0.1 * torch.randn(xb, int(16000 * xs), device=dev)
    lengths = torch.full((xb,), x.shape[1], device=dev)
    extractors = {"baseline": lambda: HuBERTBaseline(BaselineConfig(m.frontend, m.content, m.clusters)),
                  "jooci": lambda: JOOCI(m)}
    for name, build in extractors.items():
        if f"extract_{name}" in args.skip:
            continue
        model = build().to(dev).eval()

        def run(m=model) -> None:
            with torch.no_grad(), autocast:
                m.extract_features(x, lengths)

        sec = timed(run, dev, args.warm, args.reps)
        emit(out, what="extract", model=name, batch=xb, seconds=xs, step_s=round(sec, 4), audio_s_per_s=round(xb * xs / sec, 1))
        del model
    if args.preset == "base" and "hf" not in args.skip:
        try:
            import transformers

            hf = transformers.HubertModel(transformers.HubertConfig()).to(dev).eval()

            def run_hf() -> None:
                with torch.no_grad(), autocast:
                    hf(x, output_hidden_states=True)

            sec = timed(run_hf, dev, args.warm, args.reps)
            emit(out, what="extract", model="hf_hubert_base (peer)", batch=xb, seconds=xs, step_s=round(sec, 4),
                 audio_s_per_s=round(xb * xs / sec, 1))
        except Exception:
            emit(out, what="error", model="hf_hubert_base extract", err=traceback.format_exc()[-1500:])
    print("done", flush=True)


def _teacher_module(cfg) -> PhaseModule:
    import copy

    student = SpeakerModel(cfg.teacher)
    teacher = copy.deepcopy(student).requires_grad_(False)
    return PhaseModule("teacher", student, teacher, DINOCenter(cfg.teacher.head.out_dim, cfg.losses.center_momentum))


def _jooci_module(cfg, phase: str) -> PhaseModule:
    model = JOOCI(cfg.model)
    teacher = SpeakerModel(cfg.teacher).requires_grad_(False)
    if phase == "phase1":
        for name in ("frontend", "content", "cluster_heads"):
            getattr(model, name).requires_grad_(False)
    return PhaseModule(phase, model, teacher, DINOCenter(cfg.teacher.head.out_dim, cfg.losses.center_momentum))


if __name__ == "__main__":
    main()
