"""``jooci demo``: the whole pipeline on the embedded corpus (:mod:`jooci.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jooci.cli.errors import one_line, print_error, reports_errors


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jooci.demo.common import ABLATIONS, CORPORA  # no torch: names and overrides only

    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--preset", default="small", help="config preset: tiny, small or base (default small)")
    p.add_argument("--corpus", choices=list(CORPORA), default="clean",
                   help="clean (default: JOOCI-synth format 2, 60 minutes, 48 speakers; ~10 min on 2 cores) or "
                        "sessions (360 speakers in 8 recording sessions through rooms, microphones, telephone bands "
                        "and noise, test sets that resolve ~2 points: 402 minutes, hours on 2 cores; "
                        "docs/evaluation.md)")
    p.add_argument("--minutes", type=float, default=None, help="corpus size in minutes (default: the corpus's)")
    p.add_argument("--speakers", type=int, default=None, help="synthetic speakers (default: the corpus's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="K",
                   help="run the demo once per seed into DIR/seed-K (instead of --seed) and summarise them in "
                        "DIR/report: mean ± sd, and per task a verdict from the 95 %% interval of JOOCI − baseline "
                        "over the seeds; each seed takes as long as one demo")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for evaluation (default 1: fastest on 2 cores; raise on many cores)")
    p.add_argument("--ablate", nargs="+", default=[], choices=list(ABLATIONS), metavar="NAME",
                   help="also train and evaluate JOOCI variants: " + ", ".join(ABLATIONS))
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


@reports_errors("demo")
def run(args: argparse.Namespace) -> int:
    import jooci.demo as demo
    from jooci.data.synth import SynthError

    try:
        if args.seeds:
            demo.run_demo_seeds(args.out, args.seeds, preset=args.preset, minutes=args.minutes,
                                ablate=args.ablate, overrides=args.overrides, speakers=args.speakers,
                                device=args.device, threads=args.threads, corpus_name=args.corpus)
        else:
            demo.run_demo(args.out, args.preset, args.minutes, args.seed, args.ablate, args.overrides,
                          args.speakers, args.device, args.threads, corpus_name=args.corpus)
    except SynthError as e:  # a corpus of other settings or an older format: never replaced silently
        return print_error("demo", f"{one_line(e)} (a demo folder from another version or with other settings: "
                                   "pass another --out, or delete the folder to start over)")
    return 0
