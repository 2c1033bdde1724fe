"""The ``jooci`` command: one entry point for every stage of the pipeline.

Each command is one module of this package with two functions: ``add_arguments(parser)`` and
``run(args) -> int``. The modules import only the standard library at the top and the library
(torch included) inside ``run``, so ``jooci --help`` and ``jooci COMMAND --help`` start without
importing torch. Failures are one line on stderr and exit status 2 (:mod:`jooci.cli.errors`).

This package is the outermost layer: it imports the library, and nothing in the library imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from jooci import __version__
from jooci.cli import demo, evaluate, extract, prepare, pretrain, report, synth, targets, verify

# One literal table: command -> (its module, one line of help), in the order of the pipeline.
COMMANDS = {
    "synth": (synth, "generate the JOOCI-synth corpus (labelled synthetic speech, no download)"),
    "prepare": (prepare, "scan a LibriSpeech, VoxCeleb1 or IEMOCAP tree into manifests"),
    "targets": (targets, "k-means targets for masked prediction, and their quality (purity, PNMI)"),
    "pretrain": (pretrain, "pretrain JOOCI and the HuBERT-style baseline (one phase, or --all)"),
    "extract": (extract, "write hidden states of a model for every utterance of a manifest, in shards"),
    "evaluate": (evaluate, "SUPERB-style evaluation (PR, ASR, SID, ASV, ER) of a frozen model or the fbank floor"),
    "verify": (verify, "speaker verification by cosine on a model's own embedding (no trained head)"),
    "report": (report, "tables and plots comparing evaluated models"),
    "demo": (demo, "run the whole pipeline on the embedded corpus"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jooci", description="JOOCI: pretrain, evaluate and serve "
                                     "two-encoder self-supervised speech models.")
    parser.add_argument("--version", action="version", version=f"jooci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:  # faiss logs each SIMD variant it fails to load, at INFO
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    module, _ = COMMANDS[args.command]
    try:
        return module.run(args)
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback
        print(f"\njooci {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "build_parser", "main"]
