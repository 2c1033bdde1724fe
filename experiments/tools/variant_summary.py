"""One JOOCI variant over a demo's seeds, against other rows: the verdict over seeds per task.

Reads each seed folder's ``eval/*/results.json`` (as ``jooci demo --seeds`` does) and, for the
variant ``jooci NAME`` (from ``retrain_phases.py --name NAME``), prints and writes per task the mean
test difference over the seeds, its 95 % Student-t interval and the verdict, against each row given
with ``--against`` (default: the baseline, the demo's JOOCI and the control), plus the mean dev and
test values of every row involved.

Usage::

    python experiments/tools/variant_summary.py runs/demo4/seed-{0,1,2,3} --name disjoint-teacher \\
        --json experiments/teacher-at-scale/disjoint-teacher-2026-11-26-summary.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from jooci.demo import CONTROL, TASKS, differences, load_results

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", type=Path, nargs="+", help="the seed folders (runs/demo4/seed-K)")
    p.add_argument("--name", required=True, help="the variant: its row is 'jooci NAME'")
    p.add_argument("--against", nargs="+", default=["baseline", "jooci", CONTROL], metavar="ROW")
    p.add_argument("--json", type=Path, help="write the summary here")
    args = p.parse_args(argv)

    docs = {}
    for f in args.folders:
        seed = json.loads((f / "corpus" / "synth.json").read_text())["config"]["seed"]
        if seed in docs:
            raise SystemExit(f"{f}: seed {seed} again; give each seed's folder once")
        docs[seed] = load_results(f)
    if len(docs) < 2:
        raise SystemExit("a verdict over seeds needs at least two seed folders")
    variant = f"jooci {args.name}"
    missing = [f"seed {s}: {r}" for s, d in docs.items() for r in (variant, *args.against) if r not in d]
    if missing:
        raise SystemExit(f"rows not evaluated: {', '.join(missing)}")

    out: dict = {"seeds": sorted(docs), "variant": variant, "means": {}}
    for row in (variant, *args.against):
        out["means"][row] = {t: {k: statistics.fmean(docs[s][row]["tasks"][t][v] for s in docs)
                                 for k, v in (("dev", "dev_value"), ("test", "value"))}
                             for t in TASKS if all(t in docs[s][row]["tasks"] for s in docs)}
    print(f"mean over seeds {out['seeds']}, dev / test:")
    print(f"{'row':32s}" + "".join(f"{t.upper():>16s}" for t in TASKS))
    for row, m in out["means"].items():
        print(f"{row:32s}" + "".join(f"{m[t]['dev']:>8.2f}/{m[t]['test']:<7.2f}" if t in m else f"{'n/a':>16s}"
                                     for t in TASKS))
    print(f"\n{variant} − row, test, mean [95 % t-interval over seeds] verdict:")
    for row in args.against:
        d = differences(docs, variant, row)
        out[row] = {t: {k: d[t][k] for k in ("mean", "interval", "verdict", "values")} for t in d}
        cells = [f"{t.upper()} {d[t]['mean']:+.2f} [{d[t]['interval'][0]:+.2f}, {d[t]['interval'][1]:+.2f}] "
                 f"{d[t]['verdict']}" for t in TASKS if t in d]
        print(f"  − {row}: " + "; ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
