"""``jooci pretrain``: pretrain JOOCI and the HuBERT-style baseline (one phase, or ``--all``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jooci.cli.errors import reports_errors

# jooci.train.config.PHASES (tests/test_cli.py checks they agree).
PHASES = ("content", "teacher", "phase1", "phase2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="PRESET|FILE",
                   help="a shipped preset (tiny, small, base) or a YAML config file (default: the tiny defaults)")
    p.add_argument("--out", type=Path, required=True, help="run folder (resumed if it holds checkpoints)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every stage: targets, content iterations, teacher, phase 1, phase 2")
    which.add_argument("--phase", choices=PHASES, help="one stage")
    p.add_argument("--manifest", type=Path, default=None, help="--phase: pretraining manifest (default: data.manifests)")
    p.add_argument("--labels", type=Path, default=None, help="--phase content/phase1/phase2: `jooci targets` folder")
    p.add_argument("--init", type=Path, default=None, help="--phase: model folder to start from")
    p.add_argument("--teacher", type=Path, default=None, help="--phase phase1/phase2: teacher folder")
    p.add_argument("--resume", action="store_true", help="require a checkpoint in --out and continue from it "
                   "(runs always resume automatically when one is there)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (on a terminal) or plain progress lines (in a log file)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. schedule.phase2.steps=500")


def config_file(value: str | None) -> Path | None:
    """``--config``'s file: an existing file as given; a bare name (no folder, no suffix) that is
    not a file is a shipped preset (:func:`jooci.train.config.preset_path`)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file() or path.suffix or len(path.parts) > 1:
        return path  # a file (a missing one is named by load_config)
    from jooci.train.config import preset_path

    return preset_path(value)


@reports_errors("pretrain")
def run(args: argparse.Namespace) -> int:
    from jooci.train.config import load_config
    from jooci.train.pipeline import pretrain

    cfg = load_config(config_file(args.config), args.overrides)
    final = pretrain(cfg, args.out, phase=None if args.all else args.phase, manifest=args.manifest,
                     labels=args.labels, init=args.init, teacher=args.teacher, resume=args.resume,
                     progress=not args.no_progress)
    if final is not None:
        print(f"model: {final}")
    return 0
