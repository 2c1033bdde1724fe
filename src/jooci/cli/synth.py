"""``jooci synth``: generate the JOOCI-synth corpus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jooci.cli.errors import reports_errors

# jooci.data.synth.layouts.LAYOUTS, plus jooci's own (tests/data/test_layouts.py checks they agree)
LAYOUTS = ("jooci", "librispeech", "voxceleb1", "iemocap")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="corpus folder (created; reused if finished with the same settings); "
                   "with --layout other than jooci, the folder that gets the real-format tree")
    p.add_argument("--minutes", type=float, default=10.0, help="total audio to generate (default 10)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus")
    p.add_argument("--speakers", type=int, default=48, help="number of synthetic speakers (default 48)")
    p.add_argument("--heldout-fraction", type=float, default=0.2,
                   help="fraction of speakers kept for test/ASV trials only (default 0.2)")
    p.add_argument("--dev-heldout-fraction", type=float, default=0.1,
                   help="fraction of speakers kept for dev trials only (heldout_dev.jsonl, trials_dev.txt; "
                        "default 0.1, 0 for none)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="audio file format (16-bit PCM)")
    p.add_argument("--sessions", type=int, default=0,
                   help="recording sessions per speaker (format 3: every speaker a voice of its own, each session "
                        "its own room, microphone, band and noise; default 0: format 2, one clean setting)")
    p.add_argument("--telephone-fraction", type=float, default=0.2,
                   help="with --sessions: share of sessions recorded through a telephone band (default 0.2)")
    p.add_argument("--test-sessions", type=int, default=0,
                   help="with --sessions: how many of a seen speaker's sessions are its SID test sessions "
                        "(default 0: a quarter, at least one)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a corpus made with other settings")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (on a terminal) or plain progress lines (in a log file)")
    p.add_argument("--layout", choices=LAYOUTS, default="jooci",
                   help="on-disk layout: jooci (the corpus with its manifests, default) or the real format of "
                        "librispeech, voxceleb1 or iemocap, for `jooci prepare` (a rehearsal of the real corpora)")
    p.add_argument("--source", type=Path, default=None,
                   help="--layout other than jooci: the JOOCI-synth corpus folder to rewrite (generated there with "
                        "the settings above unless finished; default OUT/jooci-synth)")


@reports_errors("synth")
def run(args: argparse.Namespace) -> int:
    from jooci.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(minutes=args.minutes, seed=args.seed, speakers=args.speakers,
                      heldout_fraction=args.heldout_fraction,
                      dev_heldout_fraction=args.dev_heldout_fraction, audio_format=args.format,
                      sessions=args.sessions, telephone_fraction=args.telephone_fraction,
                      test_sessions=args.test_sessions)
    if args.layout == "jooci":
        if args.source is not None:
            raise ValueError("--source applies to --layout librispeech, voxceleb1 or iemocap only")
        out = synthesize(args.out, cfg, workers=args.workers, overwrite=args.overwrite,
                     progress=not args.no_progress)
        stats = json.loads((out / "synth.json").read_text())["stats"]
        print(summary(out, stats))
        return 0
    from jooci.data.synth.layouts import check_out, summary_line, write_layout

    source = args.source if args.source is not None else args.out / "jooci-synth"
    if not args.overwrite:
        check_out(args.out, source)  # before minutes of synthesis into a folder that would be refused
    source = synthesize(source, cfg, workers=args.workers, overwrite=args.overwrite,
                     progress=not args.no_progress)
    layout = write_layout(source, args.out, args.layout, overwrite=args.overwrite)
    print(summary_line(args.out, layout))
    return 0


def summary(out: Path, stats: dict) -> str:
    """The corpus in a few lines: totals, then one table row per split, then the styles."""
    lines = [f"JOOCI-synth corpus in {out}: {stats['utterances']} utterances, {stats['minutes']} min, "
             f"{stats['speakers']} speakers, {len(stats['phones'])}/39 ARPAbet phones, {stats['trials']} ASV trials"
             + (f", {stats['dev_trials']} dev trials" if stats.get("dev_trials") else "")
             + (f", {stats['sessions']} recording sessions" if stats.get("sessions") else ""),
             "", "| split | utterances | minutes | speakers |", "|---|---|---|---|"]
    for name, s in stats["splits"].items():
        lines.append(f"| {name} | {s['utterances']} | {s['minutes']} | {s['speakers']} |")
    lines += ["", "styles: " + ", ".join(f"{k} {v}" for k, v in stats["styles"].items())]
    return "\n".join(lines)
