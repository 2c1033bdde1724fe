"""``jooci verify``: speaker verification by cosine on a model's own embedding (no trained head)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jooci.cli.errors import reports_errors


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", required=True,
                   help="one or more of: 'fbank', a teacher folder (RUN/teacher/final), a jooci model folder; "
                        "FOLDER:N scores mean+std of hidden state N")
    p.add_argument("--data", required=True, help="folder with the ASV manifests and trials.txt (e.g. a JOOCI-synth corpus)")
    p.add_argument("--trials", choices=("test", "dev"), default="test",
                   help="test: the ASV test trials (default); dev: JOOCI-synth's held-out dev speakers "
                        "(trials_dev.txt), for choosing a recipe without the test trials")
    p.add_argument("--probe", action="store_true",
                   help="also a linear SID probe on the embedding (seen speakers: the SID train/dev/test splits, "
                        "whatever --trials says)")
    p.add_argument("--untrained", action="store_true",
                   help="after each model, also score an untrained reference of its architecture (a teacher: the "
                        "whole network; jooci: its Other encoder), initialised from --seed: what training gave it "
                        "beyond random features; only teacher and jooci folders have one")
    p.add_argument("--speaker-interval", action="store_true",
                   help="also the EER's 95 %% interval by a two-way bootstrap over the trials' speakers (1,000 draws; "
                        "trials of one speaker are not independent, so this is the interval to quote)")
    p.add_argument("--seed", type=int, default=0, help="the untrained references' initialisation (default 0)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")


@reports_errors("verify")
def run(args: argparse.Namespace) -> int:
    """Score every model; print one table row per embedding; write the JSON with --out."""
    from jooci.superb.metrics import P_TARGETS
    from jooci.superb.verify import verify_models

    rows = verify_models(args.model, args.data, trials=args.trials, probe=args.probe, untrained=args.untrained,
                         seed=args.seed, device=args.device, speaker_interval=args.speaker_interval)
    head = ("| embedding | EER % |" + (" 95 % (speakers) |" if args.speaker_interval else "")
            + " minDCF (p=0.01) | trials |" + (" SID probe acc % (test) |" if args.probe else ""))
    print(head + "\n" + "|---" * head.count(" |") + "|")
    for r, pr in rows:
        ci = ""
        if args.speaker_interval:
            ci = (f" [{r.ci95_speakers[0]:.2f}, {r.ci95_speakers[1]:.2f}] |" if r.ci95_speakers
                  else f" – ({r.test_speakers} speakers) |")
        print(f"| {r.source} | {r.eer:.2f} |{ci} {r.min_dcf[str(P_TARGETS[0])]:.3f} | {r.num_trials} |"
              + (f" {pr['test']:.2f} |" if pr else ""))
    if args.out is not None:
        from jooci.fileio import atomic_write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, [dict(r.to_dict(), **({"sid_probe": pr} if pr else {})) for r, pr in rows],
                          indent=1)
    return 0
