"""The real-format rehearsal: the whole paper-scale path on synthetic audio in the real layouts.

    python benchmarks/rehearsal.py --hours 1 --out runs/rehearsal-base-1h     # make rehearsal HOURS=1
    python benchmarks/rehearsal.py --hours 10 --preset tiny --out runs/rehearsal-tiny-10h

Stages, each a ``jooci`` command run as its own process (``torchrun`` for pretraining), timed
(wall seconds) and measured (peak resident memory of its largest process, from ``wait4``):

1. ``synth``: a JOOCI-synth corpus of ``--hours`` written as LibriSpeech, VoxCeleb1 and IEMOCAP
   trees (``jooci synth --layout``);
2. ``prepare``: ``jooci prepare`` of each tree;
3. ``pretrain``: ``torchrun --nproc-per-node RANKS -m jooci.cli pretrain --config PRESET --all`` on
   the LibriSpeech manifests (gloo on the CPU): the k-means targets of each Content iteration are
   made on every rank, then ``--steps`` steps of every phase of the preset (``--preset``, default
   base) at a CPU-sized batch (``data.batch_seconds``);
4. ``hf``: a randomly initialised HF ``HubertModel`` with the preset's Content Transformer shape
   (:data:`HF_SHAPES`; base: ``HubertConfig()``) saved with ``save_pretrained``;
5. ``evaluate``: ``jooci evaluate`` of the pretrained JOOCI and of the HF folder on PR and ASR
   (LibriSpeech; PR's phones from the layout's ``librispeech-lexicon.txt`` through ``--lexicon``,
   as SUPERB derives LibriSpeech phones), SID, ASV (VoxCeleb1) and ER (IEMOCAP), one epoch per
   task, no probes;
6. ``report``: ``jooci report`` of the two runs side by side.

Writes ``OUT/rehearsal.json`` (per stage: command, wall seconds, peak RSS MiB, exit status; for
``evaluate``, the audio it read and its feature cache's size on disk) and ``OUT/rehearsal.md`` (a
table). A stage that fails stops the run and is recorded as failed.
Finished stages are reused when the script is run again (each jooci command reuses its own output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

# HubertConfig keywords of the HF peer per preset: the preset's Content Transformer (width, depth,
# heads, FFN, positional convolution) on a wav2vec 2.0 CNN of the same width (tiny: the tiny
# preset's 64-channel CNN; small's log-mel frontend has no HF counterpart, so a 512-channel CNN)
HF_SHAPES: dict[str, dict] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
             "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "conv_dim": [64] * 7},
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
              "num_conv_pos_embeddings": 64, "num_conv_pos_embedding_groups": 16},
    "base": {},
}


def _du(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if absent)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _evaluated_audio_h(eval_dir: Path) -> float | None:
    """Hours of audio in the evaluation's feature cache (paths.json of each chunk), or None."""
    total = 0
    for paths in eval_dir.glob("cache/*/chunk_*/paths.json"):
        total += sum(n for _, n in json.loads(paths.read_text()))
    return round(total / 16000 / 3600, 3) if total else None


def _run(name: str, cmd: list[str], log_dir: Path, env: dict[str, str]) -> dict:
    log = log_dir / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    # ru_maxrss of a waited child covers it and its waited descendants (kB on Linux): the largest one
    rec = {"stage": name, "command": shlex.join(cmd), "wall_s": round(wall, 1),
           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "exit": code, "log": str(log)}
    print(f"{name:<22} {wall:8.1f} s  {rec['peak_rss_mib']:8.1f} MiB  exit {code}", flush=True)
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=1.0, help="hours of synthetic audio (default 1)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", choices=sorted(HF_SHAPES), default="base",
                   help="model preset pretrained and matched by the HF peer's shape (default base)")
    p.add_argument("--ranks", type=int, default=2, help="pretraining processes (default 2, gloo on the CPU)")
    p.add_argument("--steps", type=int, default=2, help="steps of every phase (default 2)")
    p.add_argument("--batch-seconds", type=float, default=8.0, help="audio per rank per step (default 8)")
    p.add_argument("--speakers", type=int, default=None,
                   help="synth speakers (default: 48 per hour, at least 48, at most the synth's 328 voices)")
    p.add_argument("--workers", type=int, default=None, help="synth processes (default: all cores)")
    args = p.parse_args(argv)

    out = args.out.absolute()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "jooci.cli"]
    env = {**os.environ, "JOOCI_PROGRESS_SECONDS": os.environ.get("JOOCI_PROGRESS_SECONDS", "30")}
    minutes = str(args.hours * 60)
    from jooci.data.synth.generate import ACCENTS, VARIANTS  # the synth's distinct voices

    speakers = str(args.speakers or min(len(ACCENTS) * len(VARIANTS), max(48, round(48 * args.hours))))
    synth = ["--minutes", minutes, "--speakers", speakers, "--no-progress"]
    if args.workers:
        synth += ["--workers", str(args.workers)]
    source = out / "jooci-synth"
    corpora = {"libri": out / "manifests" / "librispeech", "vox": out / "manifests" / "voxceleb1",
               "iem": out / "manifests" / "iemocap"}
    run_dir, hf_dir = out / "pretrain", out / "hf-hubert-random"
    steps = args.steps
    overrides = [f"data.corpus={corpora['libri']}", "data.manifests=[train-clean-100.jsonl,train-clean-360.jsonl]",
                 f"data.batch_seconds={args.batch_seconds}", "data.num_workers=1", "run.device=cpu",
                 "run.log_every=1", "run.checkpoint_every=1000000",
                 # base samples 10 % of 960 h for k-means; below 10 h the rehearsal samples 1 h's
                 # worth (K=1000 needs 39 frames per cluster: at least ~0.25 h of audio)
                 f"targets.fraction={min(1.0, 0.1 * 10 / args.hours):.4g}"]
    for phase in ("content", "teacher", "phase1", "phase2"):
        overrides += [f"schedule.{phase}.steps={steps}", f"schedule.{phase}.warmup_steps=1"]
    # a LibriSpeech tree has no phones: PR's come from the layout's lexicon, as SUPERB's do
    evaluate = ["--data", f"pr={corpora['libri']}", f"asr={corpora['libri']}", f"sid={corpora['vox']}",
                f"asv={corpora['vox']}", f"er={corpora['iem']}", "--lexicon",
                str(out / "LibriSpeech-layout" / "librispeech-lexicon.txt"), "--tasks", "pr,asr,sid,asv,er",
                "--epochs", "pr=1", "asr=1", "sid=1", "asv=1", "er=1", "--no-probes", "--no-progress"]
    hf_code = ("import json, sys, torch; from transformers import HubertConfig, HubertModel; torch.manual_seed(0); "
               "HubertModel(HubertConfig(**json.loads(sys.argv[2]))).save_pretrained(sys.argv[1])")
    stages = [
        ("synth-librispeech", py + ["synth", "--layout", "librispeech", "--source", str(source),
                                    "--out", str(out / "LibriSpeech-layout"), *synth]),
        ("synth-voxceleb1", py + ["synth", "--layout", "voxceleb1", "--source", str(source),
                                  "--out", str(out / "VoxCeleb1-layout"), *synth]),
        ("synth-iemocap", py + ["synth", "--layout", "iemocap", "--source", str(source),
                                "--out", str(out / "IEMOCAP-layout"), *synth]),
        ("prepare-librispeech", py + ["prepare", "librispeech", "--root", str(out / "LibriSpeech-layout"),
                                      "--out", str(corpora["libri"]), "--no-progress"]),
        ("prepare-voxceleb1", py + ["prepare", "voxceleb1", "--root", str(out / "VoxCeleb1-layout"),
                                    "--iden-split", str(out / "VoxCeleb1-layout" / "iden_split.txt"),
                                    "--trials", str(out / "VoxCeleb1-layout" / "veri_test2.txt"),
                                    "--out", str(corpora["vox"]), "--no-progress"]),
        ("prepare-iemocap", py + ["prepare", "iemocap", "--root", str(out / "IEMOCAP-layout"),
                                  "--out", str(corpora["iem"]), "--no-progress"]),
        ("pretrain", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                      f"--nproc-per-node={args.ranks}", "-m", "jooci.cli", "pretrain", "--config", args.preset,
                      "--out", str(run_dir), "--all", *overrides]),
        ("hf", [sys.executable, "-c", hf_code, str(hf_dir), json.dumps(HF_SHAPES[args.preset])]),
        ("evaluate-jooci", py + ["evaluate", "--model", str(run_dir / "final"), "--out", str(out / "eval-jooci"),
                                 *evaluate]),
        ("evaluate-hf-hubert", py + ["evaluate", "--model", str(hf_dir), "--out", str(out / "eval-hf-hubert"),
                                     *evaluate]),
        ("report", py + ["report", str(out / "eval-jooci"), str(out / "eval-hf-hubert"), "--labels", "jooci",
                         "hf-hubert-random", "--out", str(out / "report")]),
    ]
    records = []
    summary = {"hours": args.hours, "preset": args.preset, "ranks": args.ranks, "steps": steps, "batch_seconds": args.batch_seconds,
               "machine": {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
                           "cores": os.cpu_count()}, "stages": records}
    t_all = time.perf_counter()
    for name, cmd in stages:
        rec = _run(name, cmd, logs, env)
        if name.startswith("evaluate-"):
            eval_dir = out / name.replace("evaluate-", "eval-")
            rec["audio_h"] = _evaluated_audio_h(eval_dir)
            rec["cache_gib"] = round(_du(eval_dir / "cache") / 2**30, 3)
        records.append(rec)
        (out / "rehearsal.json").write_text(json.dumps(summary, indent=1))
        if rec["exit"] != 0:
            print(f"{name} failed (exit {rec['exit']}); see {rec['log']}", file=sys.stderr)
            break
    summary["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    (out / "rehearsal.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# Rehearsal: {args.preset}, {args.hours:g} h, {args.ranks} ranks, {steps} steps per phase, "
             f"{summary['machine']['cores']} cores", "",
             "| stage | wall (s) | peak RSS (MiB) | exit | audio read (h) | cache (GiB) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['wall_s']} | {r['peak_rss_mib']} | {r['exit']} | {r.get('audio_h') or ''} "
              f"| {r.get('cache_gib', '')} |" for r in records]
    (out / "rehearsal.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["exit"] == 0 for r in records) and len(records) == len(stages) else 1


if __name__ == "__main__":
    sys.exit(main())
