"""Retrain JOOCI's phases 1-2 in finished demo folders with config overrides, and evaluate them.

A variant of the demo's JOOCI that shares everything before phase 1 (corpus, targets, Content
model, teacher) with the demo in the same folder, like ``jooci demo --ablate`` but for any
override (a phase length, a loss weight, ``run.teacher_init``). Per folder:
``ablations/NAME/{phase1,phase2}``, the evaluation in ``eval/jooci_NAME`` (so ``jooci demo
--seeds`` summaries pick the row up), and ``ablations/NAME/dev.json``: the SUPERB dev values of
this variant, of the demo's JOOCI and of the baseline, the figures a rule fixed beforehand decides
on (test values stay in the eval folders).

Usage::

    python experiments/tools/retrain_phases.py runs/demo4/seed-{0,1,2,3} --name phase1-240 \\
        --set schedule.phase1.steps=240 --set schedule.phase1.warmup_steps=24
    python experiments/tools/retrain_phases.py runs/demo4/seed-{0,1,2,3} --name phase1-240 --summary FILE.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def corpus_seed(demo: Path) -> int:
    """The seed a demo folder's JOOCI-synth corpus was drawn with (the demo's seed)."""
    return int(json.loads((demo / "corpus" / "synth.json").read_text())["config"]["seed"])


def retrain(demo: Path, name: str, overrides: list[str], preset: str = "small") -> dict:
    from jooci.demo import TASKS
    from jooci.superb.runner import EvalConfig, evaluate
    from jooci.train.config import load_config, preset_path
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, train_phase
    from jooci.train.pipeline import teacher_folder

    corpus, pre = demo / "corpus", demo / "pretrain"
    seed = corpus_seed(demo)
    cfg = load_config(preset_path(preset), [f"data.corpus={corpus}", f"run.seed={seed}", "run.device=cpu",
                                            *overrides])
    teacher = teacher_folder(cfg, pre)
    labels = sorted(pre.glob("targets-*"))[-1]
    content = pre / f"content-{cfg.schedule.content_iterations}" / "final"
    folder = demo / "ablations" / name
    dist = init_distributed("cpu")
    t0 = time.perf_counter()
    p1 = train_phase(cfg, "phase1", folder / "phase1", PhaseInputs(labels, content, teacher), dist,
                     manifest=pre / "manifest.jsonl")
    model = train_phase(cfg, "phase2", folder / "phase2", PhaseInputs(labels, p1, teacher), dist,
                        manifest=pre / "manifest.jsonl")
    seconds = time.perf_counter() - t0
    ev = demo / "eval" / f"jooci_{name}"
    if not (ev / "results.json").exists():
        evaluate(str(model), corpus, TASKS, ev, EvalConfig(seed=seed, cache_dir=str(demo / "eval" / "cache"),
                                                           device="cpu"))
    dev = {}
    for label, folder_name in (("baseline", "baseline"), ("jooci", "jooci"), (name, f"jooci_{name}")):
        tasks = json.loads((demo / "eval" / folder_name / "results.json").read_text())["tasks"]
        dev[label] = {t: tasks[t]["dev_value"] for t in TASKS if t in tasks}
    out = {"demo": str(demo), "seed": seed, "overrides": overrides, "model": str(model),
           "phases_seconds": round(seconds, 1), "dev": dev}
    (folder / "dev.json").write_text(json.dumps(out, indent=1))
    return out


def summarise(demos: list[Path], name: str) -> dict:
    """Over the demo folders (one per seed): the variant ``jooci NAME`` against the baseline and
    against the demo's JOOCI, per task, with the demo's verdict over seeds (mean difference and its
    95 % t-interval, ``jooci.demo.seed_table``), on the test sets; and the mean dev values."""
    from statistics import fmean

    from jooci.demo import TASKS, load_results, seed_table

    docs = {corpus_seed(d): load_results(d) for d in demos}
    out: dict = {}
    for reference in ("baseline", "jooci"):
        pairs = {s: {"baseline": d[reference], "jooci": d[f"jooci {name}"]} for s, d in docs.items()}
        out[f"{name} - {reference}"] = seed_table(pairs)["differences"]
    out["dev_means"] = {label: {t: fmean(d[label]["tasks"][t]["dev_value"] for d in docs.values()) for t in TASKS}
                        for label in ("baseline", "jooci", f"jooci {name}")}
    return out


def print_summary(table: dict) -> None:
    for key, diffs in table.items():
        if key == "dev_means":
            continue
        for task, d in diffs.items():
            lo, hi = d["interval"] or (float("nan"), float("nan"))
            print(f"{key:28s} {task:4s} mean {d['mean']:+6.2f} [{lo:+6.2f}, {hi:+6.2f}] {d['verdict']}  "
                  f"per seed {[round(v, 1) for v in d['values']]}")
    for label, dev in table["dev_means"].items():
        print(f"dev mean {label:28s} " + "  ".join(f"{t} {v:6.2f}" for t, v in dev.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demos", nargs="+", type=Path, help="finished jooci demo folders")
    p.add_argument("--name", required=True, help="the variant's name (folder and report label)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a config override for phases 1-2 (repeat for more)")
    p.add_argument("--preset", default="small", help="the preset the demo folders were made with")
    p.add_argument("--summary", type=Path, default=None,
                   help="only summarise finished folders over the seeds into this JSON file")
    args = p.parse_args(argv)
    if args.summary:
        table = summarise(args.demos, args.name)
        args.summary.write_text(json.dumps(table, indent=1))
        print_summary(table)
        return 0
    import torch

    torch.set_num_threads(2)
    for demo in args.demos:
        print(json.dumps(retrain(demo, args.name, args.overrides, args.preset), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
