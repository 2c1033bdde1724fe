"""How much of its teacher does the Other encoder take over, as phase 1 gets longer? (session 6, issue 7)

``benchmarks/oracle_teacher.py`` gave JOOCI a teacher that identifies the corpus's speakers far
better than the log-mel statistics (linear SID probe 97.7 against 88.6 %, seed 0). After the
demo's 80 + 80 phase steps JOOCI's Other embedding reached 85.6 %: the distillation carried over
less than half of that teacher's lead. This script asks whether that is a matter of steps.

For one demo folder and each teacher given, phase 1 is retrained from the demo's Content model
(``configs/small.yaml``; only ``schedule.phase1.steps`` and its warm-up, 10 %, change) for each step
count, and the Other embedding of the result is measured on the dev sets only (test figures are
stored but are not what any choice is made on):

- ``sid``: linear SID probe (``jooci verify --probe``: SID train split, C chosen on SID dev);
- ``style``: the same probe with ER's labels on the ER splits (speaking style, held-out speakers);
- ``eer_dev``: cosine-scored EER on the corpus's held-out dev-speaker trials (``trials_dev.txt``).

Each teacher's row also holds what it gives the student to learn (``targets``:
``jooci.superb.verify.teacher_targets``).

Usage::

    python benchmarks/phase1_steps.py runs/demo4/seed-0 --teacher rdino=runs/demo4/seed-0/pretrain/teacher/final \
        --teacher oracle=runs/demo4/seed-0/ablations/oracle-teacher/teacher/final --steps 80 240 480 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from jooci.superb.data import DataFolder, task_splits
from jooci.superb.verify import embed_utterances, embedder, linear_probe, sid_probe, teacher_targets, verify


def style_probe(source: str, corpus: Path) -> dict:
    """Linear probe of speaking style (ER labels) on ``source``'s utterance embedding."""
    splits = task_splits("er", DataFolder(corpus))
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    emb = embed_utterances(embedder(source), [u for p in parts.values() for u in p])
    x = {n: torch.stack([emb[u.id] for u in p]).double().numpy() for n, p in parts.items()}
    y = {n: np.array([u.style for u in p]) for n, p in parts.items()}
    return linear_probe(x, y)


def measure(source: str, corpus: Path) -> dict:
    return {"sid": sid_probe(source, corpus), "style": style_probe(source, corpus),
            "eer_dev": verify(source, corpus, trials="dev").eer}


def main() -> None:
    from jooci.train.config import preset_path
    from jooci.train.config import load_config
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, train_phase

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demo", type=Path, help="a finished jooci demo folder")
    p.add_argument("--teacher", action="append", required=True, metavar="NAME=FOLDER", help="a teacher folder")
    p.add_argument("--steps", type=int, nargs="+", default=[80, 240, 480])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a config override for every run (repeat for more); name the variant with --tag")
    p.add_argument("--tag", default="", help="the variant's name, added to the teacher's in rows and folders")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = p.parse_args()
    if args.overrides and not args.tag:
        p.error("--set needs a --tag, so that the variant's rows and folders are told apart")
    torch.set_num_threads(2)

    demo, corpus, pre = args.demo, args.demo / "corpus", args.demo / "pretrain"
    seed = json.loads((corpus / "synth.json").read_text())["config"]["seed"]
    labels = sorted(pre.glob("targets-*"))[-1]
    dist = init_distributed("cpu")
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(r["teacher"], r["steps"]) for r in results}
    for spec in args.teacher:
        teacher_name, folder = spec.split("=", 1)
        teacher = Path(folder)
        if (teacher_name, "teacher") not in done:
            results.append({"teacher": teacher_name, "steps": "teacher", **measure(str(teacher), corpus),
                            "targets": teacher_targets(teacher, corpus)})
        name = f"{teacher_name}+{args.tag}" if args.tag else teacher_name
        for steps in args.steps:
            if (name, steps) in done:
                continue
            cfg = load_config(preset_path("small"), [
                f"data.corpus={corpus}", f"run.seed={seed}", "run.device=cpu", f"run.teacher_init={teacher}",
                f"schedule.phase1.steps={steps}", f"schedule.phase1.warmup_steps={max(1, steps // 10)}",
                *args.overrides])
            content = pre / f"content-{cfg.schedule.content_iterations}" / "final"
            t0 = time.perf_counter()
            model = train_phase(cfg, "phase1", demo / "ablations" / "phase1-steps" / f"{name}-{steps}",
                                PhaseInputs(labels, content, teacher), dist, manifest=pre / "manifest.jsonl")
            row = {"teacher": name, "steps": steps, "overrides": args.overrides,
                   "train_seconds": round(time.perf_counter() - t0, 1), **measure(str(model), corpus)}
            results.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(results, indent=1))
    args.out.write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"{r['teacher']:24s} {str(r['steps']):>8s}  SID probe dev/test {r['sid']['dev']:5.1f}/{r['sid']['test']:5.1f}"
              f"  style dev/test {r['style']['dev']:5.1f}/{r['style']['test']:5.1f}  dev-trial EER {r['eer_dev']:5.2f}")


if __name__ == "__main__":
    main()
