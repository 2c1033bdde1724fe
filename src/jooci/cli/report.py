"""``jooci report``: tables and plots comparing models evaluated by ``jooci evaluate``."""

from __future__ import annotations

import argparse

from jooci.cli.errors import reports_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders written by `jooci evaluate`")
    parser.add_argument("--out", required=True, help="folder for report.md and the PNGs")
    parser.add_argument("--reference", default=None, help="label of the reference model (default: the first run)")
    parser.add_argument("--labels", nargs="+", default=None, help="names for the runs, in order")


@reports_errors("report")
def run(args: argparse.Namespace) -> int:
    """Write the report; print its markdown."""
    from jooci.superb.report import write_report

    path = write_report(args.runs, args.out, args.reference, args.labels)
    print(path.read_text())
    return 0
