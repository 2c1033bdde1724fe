"""The ``jooci`` command: one entry point for every stage of the pipeline.

Each subcommand is a pair of functions (add its arguments; run it) imported only when that
subcommand runs, so ``jooci --help`` and ``jooci synth`` start without importing torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from jooci import __version__


def _add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="corpus folder (created; reused if finished with the same settings)")
    p.add_argument("--minutes", type=float, default=10.0, help="total audio to generate (default 10)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same corpus")
    p.add_argument("--speakers", type=int, default=48, help="number of synthetic speakers (default 48)")
    p.add_argument("--heldout-fraction", type=float, default=0.2,
                   help="fraction of speakers kept for test/ASV trials only (default 0.2)")
    p.add_argument("--dev-heldout-fraction", type=float, default=0.1,
                   help="fraction of speakers kept for dev trials only (heldout_dev.jsonl, trials_dev.txt; "
                        "default 0.1, 0 for none)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="audio file format (16-bit PCM)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a corpus made with other settings")


def _run_synth(args: argparse.Namespace) -> int:
    import json

    from jooci.data.synth import SynthConfig, SynthError, synthesize

    cfg = SynthConfig(minutes=args.minutes, seed=args.seed, speakers=args.speakers,
                      heldout_fraction=args.heldout_fraction,
                      dev_heldout_fraction=args.dev_heldout_fraction, audio_format=args.format)
    try:
        out = synthesize(args.out, cfg, workers=args.workers, overwrite=args.overwrite)
    except (SynthError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stats = json.loads((out / "synth.json").read_text())["stats"]
    print(_synth_summary(out, stats))
    return 0


def _synth_summary(out: Path, stats: dict) -> str:
    lines = [f"JOOCI-synth corpus in {out}: {stats['utterances']} utterances, {stats['minutes']} min, "
             f"{stats['speakers']} speakers, {len(stats['phones'])}/39 ARPAbet phones, {stats['trials']} ASV trials"
             + (f", {stats['dev_trials']} dev trials" if stats.get("dev_trials") else ""),
             "", "| split | utterances | minutes | speakers |", "|---|---|---|---|"]
    for name, s in stats["splits"].items():
        lines.append(f"| {name} | {s['utterances']} | {s['minutes']} | {s['speakers']} |")
    lines += ["", "styles: " + ", ".join(f"{k} {v}" for k, v in stats["styles"].items())]
    return "\n".join(lines)


def _add_prepare(p: argparse.ArgumentParser) -> None:
    from jooci.data.corpora import add_prepare_arguments

    add_prepare_arguments(p)


def _run_prepare(args: argparse.Namespace) -> int:
    from jooci.data.corpora import run_prepare

    return run_prepare(args)


def _add_targets(p: argparse.ArgumentParser) -> None:
    from jooci.targets.cli import add_targets_arguments

    add_targets_arguments(p)


def _run_targets(args: argparse.Namespace) -> int:
    from jooci.targets.cli import run_targets

    return run_targets(args)


def _add_pretrain(p: argparse.ArgumentParser) -> None:
    from jooci.train.pipeline import add_pretrain_arguments

    add_pretrain_arguments(p)


def _run_pretrain(args: argparse.Namespace) -> int:
    from jooci.train.pipeline import run_pretrain

    return run_pretrain(args)


def _add_extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("--manifest", required=True, help="JSONL manifest of the utterances")
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--layers", type=int, nargs="+", default=None,
                   help="hidden-state indices (0: Transformer input, 1..L: Content, then Other); default all")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per batch, seconds")
    p.add_argument("--shard-size", type=int, default=1000, help="utterances per shard")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--max-skipped", type=float, default=0.05,
                   help="fail if more than this fraction of files is unreadable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_extract(args: argparse.Namespace) -> int:
    from jooci.audio import AudioError
    from jooci.data.manifest import ManifestError
    from jooci.extract import ExtractError, extract_manifest
    from jooci.hub import CheckpointError

    try:
        summary = extract_manifest(args.model, args.manifest, args.out, layers=args.layers,
                                   batch_seconds=args.batch_seconds, shard_size=args.shard_size, dtype=args.dtype,
                                   device=args.device, max_skipped=args.max_skipped, progress=not args.no_progress)
    except (AudioError, ManifestError, CheckpointError, ExtractError, ValueError) as e:
        print(f"jooci extract: error: {e}", file=sys.stderr)
        return 2
    print(f"{summary.num_utterances} utterances, {summary.num_frames} frames, layers {summary.layers} "
          f"-> {summary.out_dir} ({len(summary.shards)} shard(s), {len(summary.skipped)} file(s) skipped)")
    return 0


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from jooci.superb.runner import add_evaluate_arguments

    add_evaluate_arguments(p)


def _run_evaluate(args: argparse.Namespace) -> int:
    from jooci.superb.runner import run_evaluate

    return run_evaluate(args)


def _add_verify(p: argparse.ArgumentParser) -> None:
    from jooci.superb.verify import add_verify_arguments

    add_verify_arguments(p)


def _run_verify(args: argparse.Namespace) -> int:
    from jooci.superb.verify import run_verify_command

    return run_verify_command(args)


def _add_report(p: argparse.ArgumentParser) -> None:
    from jooci.superb.report import add_report_arguments

    add_report_arguments(p)


def _run_report(args: argparse.Namespace) -> int:
    from jooci.superb.report import run_report

    return run_report(args)


def _add_demo(p: argparse.ArgumentParser) -> None:
    from jooci.demo.common import ABLATIONS

    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--preset", default="small", help="config preset: configs/<preset>.yaml (default small)")
    p.add_argument("--minutes", type=float, default=60.0, help="corpus size in minutes (default 60)")
    p.add_argument("--speakers", type=int, default=48, help="synthetic speakers (default 48)")
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


def _run_demo(args: argparse.Namespace) -> int:
    import jooci.demo as demo
    from jooci.data.synth import SynthError

    try:
        if args.seeds:
            demo.run_demo_seeds(args.out, args.seeds, preset=args.preset, minutes=args.minutes,
                                ablate=args.ablate, overrides=args.overrides, speakers=args.speakers,
                                device=args.device, threads=args.threads)
        else:
            demo.run_demo(args.out, args.preset, args.minutes, args.seed, args.ablate, args.overrides,
                          args.speakers, args.device, args.threads)
    except SynthError as e:  # a corpus of other settings or an older format: never replaced silently
        print(f"jooci demo: error: {e} (a demo folder from another version or with other settings: "
              "pass another --out, or delete the folder to start over)", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"jooci demo: error: {e}", file=sys.stderr)
        if _raised_in_a_package(e):  # a library failing deep in a run: a bug, not bad input
            import traceback

            traceback.print_exception(e, file=sys.stderr)
            print("jooci demo: the error above was raised inside a library, not by jooci's own checks: "
                  "this is likely a bug in jooci; please report it with the traceback", file=sys.stderr)
        return 2
    return 0


def _raised_in_a_package(e: BaseException) -> bool:
    """Whether the innermost frame of ``e``'s traceback is an installed package other than jooci
    (torch, numpy, ...): a failure deep inside a library. jooci's own checks and Python's standard
    library (a missing file, a broken JSON file) are input problems, reported in one line."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    if where.is_relative_to(Path(__file__).resolve().parent):  # jooci itself, wherever it is installed
        return False
    return "site-packages" in where.parts or "dist-packages" in where.parts


# One literal table: subcommand -> (help, add arguments, run). No registry, no import-time magic.
COMMANDS = {
    "synth": ("generate the JOOCI-synth corpus (labelled synthetic speech, no download)", _add_synth, _run_synth),
    "prepare": ("scan a LibriSpeech, VoxCeleb1 or IEMOCAP tree into manifests", _add_prepare, _run_prepare),
    "targets": ("k-means targets for masked prediction, and their quality (purity, PNMI)", _add_targets, _run_targets),
    "pretrain": ("pretrain JOOCI and the HuBERT-style baseline (one phase, or --all)", _add_pretrain, _run_pretrain),
    "extract": ("write hidden states of a model for every utterance of a manifest, in shards", _add_extract, _run_extract),
    "evaluate": ("SUPERB-style evaluation (PR, ASR, SID, ASV, ER) of a frozen model or the fbank floor", _add_evaluate, _run_evaluate),
    "verify": ("speaker verification by cosine on a model's own embedding (no trained head)", _add_verify, _run_verify),
    "report": ("tables and plots comparing evaluated models", _add_report, _run_report),
    "demo": ("run the whole pipeline on the embedded corpus", _add_demo, _run_demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jooci", description="JOOCI: pretrain, evaluate and serve "
                                     "two-encoder self-supervised speech models.")
    parser.add_argument("--version", action="version", version=f"jooci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
