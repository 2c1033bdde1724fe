"""Can the RDINO teacher's recipe give JOOCI's Other encoder more to learn at demo scale?

The demo's self-supervised RDINO teacher gives nearly uniform DINO targets (``../phase1-steps/``),
while a teacher with sharp targets (the label-trained oracle, ``../oracle-teacher/``) carried into
JOOCI beat the baseline on ASV, ER and PR over four seeds. This script trains teacher
variants (only the teacher phase's recipe changes: the number of prototypes, its steps, its
learning rate) in one demo folder and measures, on dev sets only:

- the teacher itself: SID probe, style probe, dev-trial EER (``experiments/tools/measures.py``)
  and its targets (``jooci.superb.verify.teacher_targets``: entropy, ln K, top probability);
- the Other embedding after phase 1 from the demo's Content model with this teacher, with the
  bounded adversary (``losses.adversary=confusion``) and a 240-step phase 1 (the candidate recipe
  of ``../adversary-objective/``, so neither the GRL runaway nor a short phase hides what the teacher gives).

Every variant reads the demo folder's corpus, pretraining manifest, labels and Content model and
writes ``ablations/teacher-variants/NAME/{teacher,phase1}``; rows go to ``--out`` (JSON list).
Test figures are stored too; no choice is made on them.

Usage::

    python experiments/teacher-variants/teacher_variants.py runs/demo4/seed-0 --name k256 \\
        --set teacher.head.out_dim=256 --set model.dino.out_dim=256 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

#: phase 1 as the candidate recipe of experiments/adversary-objective/ (docs/method.md T27)
PHASE1 = ["losses.adversary=confusion", "schedule.phase1.steps=240", "schedule.phase1.warmup_steps=24"]


def run_variant(demo: Path, name: str, overrides: list[str], phase1: list[str] | None, device: str = "cpu",
                save=lambda row: None, preset: str = "small") -> dict:
    """Teacher phase, its measures, then (unless ``phase1`` is None) phase 1 and its measures;
    ``save(row)`` after each half."""
    from measures import measure

    from jooci.superb.verify import teacher_targets
    from jooci.train.config import load_config, preset_path
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, train_phase

    corpus, pre = demo / "corpus", demo / "pretrain"
    seed = json.loads((corpus / "synth.json").read_text())["config"]["seed"]
    base = [f"data.corpus={corpus}", f"run.seed={seed}", f"run.device={device}"]
    cfg = load_config(preset_path(preset), [*base, *overrides])
    folder = demo / "ablations" / "teacher-variants" / name
    dist = init_distributed(device)
    manifest = pre / "manifest.jsonl"

    t0 = time.perf_counter()
    teacher = train_phase(cfg, "teacher", folder / "teacher", PhaseInputs(), dist, manifest=manifest, progress=False)
    t_teacher = time.perf_counter() - t0
    row = {"name": name, "seed": seed, "overrides": overrides, "phase1": phase1,
           "teacher_seconds": round(t_teacher, 1),
           "teacher": {**measure(str(teacher), corpus), "targets": teacher_targets(teacher, corpus,
                                                                                  temp=cfg.losses.teacher_temp)}}
    print(json.dumps({"name": name, "teacher": row["teacher"]}), flush=True)
    save(row)
    if phase1 is None:
        return row

    cfg1 = load_config(preset_path(preset), [*base, *overrides, f"run.teacher_init={teacher}", *phase1])
    labels = sorted(pre.glob("targets-*"))[-1]
    content = pre / f"content-{cfg1.schedule.content_iterations}" / "final"
    t0 = time.perf_counter()
    student = train_phase(cfg1, "phase1", folder / "phase1", PhaseInputs(labels, content, teacher), dist,
                          manifest=manifest, progress=False)
    row["phase1_seconds"] = round(time.perf_counter() - t0, 1)
    row["other"] = measure(str(student), corpus)
    save(row)
    return row


def print_rows(rows: list[dict]) -> None:
    print(f"{'variant':18s} {'t s':>6s} {'H/lnK':>11s} {'top':>6s} | teacher SID style EERdev | "
          f"Other SID style EERdev (dev)")
    for r in rows:
        t, g = r["teacher"], r["teacher"]["targets"]
        other = (f"{r['other']['sid']['dev']:5.1f} {r['other']['style']['dev']:5.1f} {r['other']['eer_dev']:6.2f}"
                 if "other" in r else "(phase 1 not finished)")
        print(f"{r['name']:18s} {r['teacher_seconds']:6.0f} {g['entropy']:5.2f}/{g['uniform']:5.2f} "
              f"{g['top_prob']:6.3f} | {t['sid']['dev']:5.1f} {t['style']['dev']:5.1f} {t['eer_dev']:6.2f} | {other}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demo", type=Path, help="a finished jooci demo folder (corpus, pretrain/content-*, targets-*)")
    p.add_argument("--name", help="the variant's name (folder and row)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a config override for the teacher phase and phase 1 (repeat for more)")
    p.add_argument("--phase1", nargs="*", default=PHASE1, metavar="KEY=VALUE",
                   help=f"phase-1 overrides (default: {' '.join(PHASE1)})")
    p.add_argument("--teacher-only", action="store_true", help="train and measure the teacher, no phase 1")
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default="small", help="the preset the demo folder was made with")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True,
                   help="JSON list the row is added to (one file per process when variants run side by side)")
    p.add_argument("--show", action="store_true", help="only print the rows in --out")
    args = p.parse_args(argv)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    if not args.show:
        if not args.name:
            p.error("--name is required unless --show")
        import torch

        torch.set_num_threads(args.threads)

        def save(row: dict) -> None:
            old = json.loads(args.out.read_text()) if args.out.exists() else []  # others may have written
            args.out.write_text(json.dumps([r for r in old if r["name"] != args.name] + [row], indent=1))

        run_variant(args.demo, args.name, args.overrides, None if args.teacher_only else args.phase1, args.device, save,
                    args.preset)
        rows = json.loads(args.out.read_text())
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
