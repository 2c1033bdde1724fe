"""``jooci evaluate``: SUPERB-style evaluation (PR, ASR, SID, ASV, ER) of a frozen model (a jooci model
folder or a Hugging Face transformers HuBERT / WavLM / wav2vec 2.0 folder) or the fbank floor."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from jooci.cli.errors import reports_errors

# jooci.superb.runner's TASKS and EvalConfig.threads (tests/test_cli.py checks they agree).
TASKS = ("pr", "asr", "sid", "asv", "er")
THREADS = 1
MAX_SKIPPED = 0.05  # EvalConfig.max_skipped (not imported here: the parser is built without torch)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="jooci model folder (config.json + model.safetensors), a "
                        "Hugging Face transformers folder (HubertModel, WavLMModel or Wav2Vec2Model written by "
                        "save_pretrained; needs jooci[hf]), or 'fbank' for the log-mel floor")
    parser.add_argument("--data", required=True, nargs="+",
                        help="manifest folder for every task, or TASK=FOLDER pairs (e.g. pr=libri asr=libri sid=vox1)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--out", required=True, help="output folder (results.json, rewritten as each task ends; "
                        "layer_weights.png; tasks/ lets a rerun continue where a killed run stopped)")
    parser.add_argument("--layers", choices=["all", "content", "other"], default="all",
                        help="hidden states in the weighted sum (default all; content/other: a jooci model's "
                             "Content or Other states only)")
    parser.add_argument("--normalize", action="store_true", help="LayerNorm each hidden state before the sum")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", nargs="+", default=None, metavar="TASK=N", help="override epochs, e.g. pr=60")
    parser.add_argument("--lr", nargs="+", default=None, metavar="TASK=LR[,LR...]",
                        help="override the LR sweep, e.g. pr=1e-2,3e-3 asv=1e-3")
    parser.add_argument("--head-width", nargs="+", default=None, metavar="TASK=N",
                        help="the head's width where the task has one to choose (asr: projection and BiLSTM, "
                             "default 64), e.g. asr=256")
    parser.add_argument("--no-probes", action="store_true", help="skip the layer-wise probes")
    parser.add_argument("--cache", default=None, help="feature cache folder (default OUT/cache)")
    parser.add_argument("--lexicon", default=None, help="CMUdict-style lexicon for PR phones from transcripts")
    parser.add_argument("--er-fold", type=int, default=1, help="IEMOCAP session held out for ER (1-5)")
    parser.add_argument("--device", default="cpu", help="device for feature extraction, and for training the "
                        "task heads when it is a CUDA device (the layer-wise probes train on the CPU)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help=f"torch threads for extraction (default {THREADS}, as in Python: fastest on a "
                             "shared 2-core machine; raise on many cores)")
    parser.add_argument("--max-skipped", type=float, default=MAX_SKIPPED,
                        help="share of utterances with unreadable audio that may be skipped (logged, counted, left "
                             f"out of the tasks) before the run stops naming them (default {MAX_SKIPPED})")
    parser.add_argument("--no-progress", action="store_true")


def task_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``["pr=a", "sid=b"]`` -> ``{"pr": "a", "sid": "b"}``; ``what`` names the option in errors."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what}: expected TASK=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k not in TASKS:
            raise ValueError(f"{what}: unknown task {k!r} in {item!r}")
        out[k] = v
    return out


@reports_errors("evaluate")
def run(args: argparse.Namespace) -> int:
    """Evaluate, then print the per-task results."""
    from jooci.superb import runner
    from jooci.superb.cache import FBANK

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    data: Any = args.data[0] if len(args.data) == 1 and "=" not in args.data[0] else task_pairs(args.data, "--data")
    settings = runner.default_settings()
    for k, v in task_pairs(args.epochs, "--epochs").items():
        settings[k] = dataclasses.replace(settings[k], epochs=int(v))
    for k, v in task_pairs(args.lr, "--lr").items():
        settings[k] = dataclasses.replace(settings[k], lrs=tuple(float(x) for x in v.split(",")))
    for k, v in task_pairs(args.head_width, "--head-width").items():
        if k != "asr":
            raise ValueError(f"--head-width: only asr has a head width to choose, got {k!r}")
        if not v.isdigit() or int(v) < 1:
            raise ValueError(f"--head-width: expected a positive integer for {k}, got {v!r}")
        settings[k] = dataclasses.replace(settings[k], width=int(v))
    cfg = runner.EvalConfig(seed=args.seed, layers=args.layers, normalize=args.normalize, tasks=settings,
                            probes=() if args.no_probes else runner.PROBE_TASKS, cache_dir=args.cache,
                            lexicon=args.lexicon, er_fold=args.er_fold, device=args.device, threads=args.threads,
                            max_skipped=args.max_skipped, progress=not args.no_progress)
    model = args.model if args.model == FBANK else Path(args.model)
    doc = runner.evaluate(model, data, tasks, args.out, cfg)
    print(runner.summary_table(doc))
    return 0
