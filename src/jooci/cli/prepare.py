"""``jooci prepare``: scan a LibriSpeech, VoxCeleb1 or IEMOCAP tree into manifests."""

from __future__ import annotations

import argparse
from pathlib import Path

from jooci.cli.errors import reports_errors

# The corpus layouts jooci.data.corpora scans (its SCANNERS; tests/test_cli.py checks they agree).
KINDS = ("librispeech", "voxceleb1", "iemocap")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="which corpus layout --root holds")
    parser.add_argument("--root", required=True, type=Path, help="the corpus folder as distributed")
    parser.add_argument("--out", required=True, type=Path, help="folder for <split>.jsonl (and trials.txt)")
    parser.add_argument("--max-skip-fraction", type=float, default=None,
                        help="share of utterances that may be skipped (default: jooci.data.corpora.MAX_SKIP_FRACTION)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (on a terminal) or plain progress lines (in a log file)")
    g = parser.add_argument_group("librispeech")
    g.add_argument("--subsets", nargs="+", default=None, help="subsets to scan (default: all found)")
    g = parser.add_argument_group("voxceleb1")
    g.add_argument("--trials", type=Path, default=None, help="ASV trial list, e.g. veri_test2.txt")
    g.add_argument("--iden-split", type=Path, default=None, help="SID split file iden_split.txt")
    g.add_argument("--allow-missing", action="store_true",
                   help="drop protocol lines naming absent utterances instead of failing")
    g = parser.add_argument_group("iemocap")
    g.add_argument("--classes", nargs="+", default=None, help="labels to keep (default: neu hap ang sad)")
    g.add_argument("--keep-excited", action="store_true", help="do not merge exc into hap")


@reports_errors("prepare")
def run(args: argparse.Namespace) -> int:
    """Scan the corpus; print each file written with its number of utterances (or trials)."""
    from jooci.data.corpora import prepare_corpus

    given = {
        "subsets": args.subsets, "trials": args.trials, "iden_split": args.iden_split,
        "classes": args.classes, "max_skip_fraction": args.max_skip_fraction,
        "allow_missing": args.allow_missing or None, "merge_excited": False if args.keep_excited else None,
    }
    options = {k: v for k, v in given.items() if v is not None}  # only what was asked for
    if args.no_progress:
        options["progress"] = False
    paths = prepare_corpus(args.kind, args.root, args.out, **options)
    for name, p in paths.items():
        with open(p, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        print(f"{name}: {p} ({n} {'trials' if name == 'trials' else 'utterances'})")
    return 0
