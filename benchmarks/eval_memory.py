"""Peak memory of the SUPERB heads at two corpus sizes: ``jooci evaluate`` rerun on a finished
rehearsal's feature caches (extraction reused, every task trained afresh), one process per model.

    python benchmarks/eval_memory.py runs/rehearsal-tiny-1h runs/rehearsal-tiny-10h --out runs/eval-memory
    python benchmarks/eval_memory.py ... --src /path/to/other/checkout/src --label before

The evaluation of a rehearsal (``benchmarks/rehearsal.py``) measures extraction and heads in one
process; this isolates the heads, whose memory is what grows with the corpus when features are
held in RAM. ``--src`` runs another source tree's ``jooci`` on the same caches (a before/after
comparison: the cache format is the same). Writes ``OUT/eval_memory.json`` and ``.md``; figures
are peak RSS of the evaluate process (``wait4``), wall seconds, and the audio in the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rehearsal import _evaluated_audio_h, _run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rehearsals", nargs="+", type=Path, help="finished rehearsal folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--src", type=Path, default=None, help="the src/ folder whose jooci to run (default: installed)")
    p.add_argument("--label", default="current", help="name of this source tree in the results")
    args = p.parse_args(argv)
    out = args.out.absolute() / args.label
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(args.src.absolute()) + os.pathsep + env.get("PYTHONPATH", "")
    records = []
    for reh in args.rehearsals:
        reh = reh.absolute()
        meta = json.loads((reh / "rehearsal.json").read_text())
        evaluate = next(r for r in meta["stages"] if r["stage"] == "evaluate-jooci")["command"].split()
        options = evaluate[evaluate.index("--data"):evaluate.index("--no-probes")]  # data, lexicon, tasks, epochs
        models = {"jooci": reh / "pretrain" / "final", "hf-hubert": reh / "hf-hubert-random"}
        for name, model in models.items():
            run = f"{reh.name}-{name}"
            cmd = [sys.executable, "-m", "jooci.cli", "evaluate", "--model", str(model), "--out", str(out / run),
                   "--cache", str(reh / f"eval-{name}" / "cache"), *options, "--no-probes", "--no-progress"]
            rec = _run(run, cmd, out, env)
            rec.update(rehearsal=str(reh), hours=meta["hours"], preset=meta["preset"], model=name,
                       label=args.label, audio_h=_evaluated_audio_h(reh / f"eval-{name}"))
            records.append(rec)
            (out / "eval_memory.json").write_text(json.dumps(records, indent=1))
    lines = [f"# Heads' peak memory ({args.label})", "", "| run | audio (h) | wall (s) | peak RSS (MiB) | exit |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['audio_h']} | {r['wall_s']} | {r['peak_rss_mib']} | {r['exit']} |" for r in records]
    (out / "eval_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["exit"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
