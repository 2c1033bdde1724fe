"""How much of its teacher does the Other encoder take over, as phase 1 gets longer?

For one demo folder and each teacher given, phase 1 is retrained from the demo's Content model
(the preset's config; only ``schedule.phase1.steps`` and its warm-up, 10 %, change, plus any
``--set``) for each step count, and the Other embedding of the result is measured on the dev sets
(``experiments/tools/measures.py``: SID probe, style probe, dev-trial EER). Each teacher's own row
also holds what it gives the student to learn (``targets``: ``jooci.superb.verify.teacher_targets``).
Rows are appended to ``--out`` (a JSON list); rows already there are not run again.

Usage::

    python experiments/phase1-steps/phase1_steps.py runs/demo4/seed-0 \\
        --teacher rdino=runs/demo4/seed-0/pretrain/teacher/final \\
        --teacher oracle=runs/demo4/seed-0/ablations/oracle-teacher/teacher/final --steps 80 240 480 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))


def main(argv: list[str] | None = None) -> int:
    import torch
    from measures import measure

    from jooci.superb.verify import teacher_targets
    from jooci.train.config import load_config, preset_path
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, train_phase

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demo", type=Path, help="a finished jooci demo folder")
    p.add_argument("--teacher", action="append", required=True, metavar="NAME=FOLDER", help="a teacher folder")
    p.add_argument("--steps", type=int, nargs="+", default=[80, 240, 480])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a config override for every run (repeat for more); name the variant with --tag")
    p.add_argument("--tag", default="", help="the variant's name, added to the teacher's in rows and folders")
    p.add_argument("--preset", default="small", help="the preset the demo folder was made with")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = p.parse_args(argv)
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
            cfg = load_config(preset_path(args.preset), [
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
