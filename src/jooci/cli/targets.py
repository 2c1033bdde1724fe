"""``jooci targets``: k-means label files for the Content encoder, and their quality.

    jooci targets --manifest M --out DIR --k 100,500,1000 [--features mfcc | --model CKPT --layer L]
                  [--fraction F] [--nshard N --rank R] [--step dump|fit|label|merge]
    jooci targets --quality --manifest M --labels DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jooci.cli.errors import reports_errors

# jooci.targets.pipeline.STEPS plus "all" (tests/test_cli.py checks they agree).
STEPS = ("all", "dump", "fit", "label", "merge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, type=Path, help="JSONL manifest (labels follow its order)")
    parser.add_argument("--out", type=Path, help="output folder for features, centroids, labels, provenance")
    parser.add_argument("--k", default="100,500,1000",
                        help="cluster counts, comma-separated: one label file per K (default 100,500,1000)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--features", choices=("mfcc",), default=None,
                     help="cluster 39-d MFCC+delta+delta-delta at 50 Hz (iteration 1; the default)")
    src.add_argument("--model", type=Path, help="cluster a layer of this saved model (iteration 2+)")
    parser.add_argument("--layer", type=int, help="with --model: the layer (0 = CNN projection, l = Content layer l)")
    parser.add_argument("--fraction", type=float, default=0.1,
                        help="fraction of utterances the k-means sample is drawn from (default 0.1)")
    parser.add_argument("--max-frames", type=int, default=2_000_000, help="cap on k-means sample frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("faiss", "sklearn"), default="faiss",
                        help="k-means implementation (faiss falls back to sklearn when faiss-cpu is not installed)")
    parser.add_argument("--niter", type=int, default=50, help="k-means iterations")
    parser.add_argument("--threads", type=int, default=None,
                        help="k-means threads (default: 1 for small fits, all cores for large ones)")
    parser.add_argument("--nshard", type=int, default=1, help="split the manifest into this many contiguous shards")
    parser.add_argument("--rank", type=int, default=None,
                        help="the shard this machine dumps / labels (default: all of them, here)")
    parser.add_argument("--step", choices=STEPS, default="all",
                        help="run one step (multi-machine): dump and label per rank; fit and merge once")
    parser.add_argument("--centroids-from", type=Path, default=None,
                        help="apply the centroids of an earlier output folder instead of fitting (dev splits)")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per feature batch")
    parser.add_argument("--device", default="cpu", help="device for --model features")
    parser.add_argument("--quality", action="store_true",
                        help="measure phone purity, cluster purity and PNMI of --labels against the alignments")
    parser.add_argument("--labels", type=Path, help="with --quality: the label folder written by jooci targets")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


@reports_errors("targets")
def run(args: argparse.Namespace) -> int:
    return _quality(args) if args.quality else _make(args)


def parse_ks(text: str) -> tuple[int, ...]:
    """``"100,500"`` -> ``(100, 500)``."""
    try:
        return tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise ValueError(f"--k must be comma-separated integers, got {text!r}") from None


def _make(args: argparse.Namespace) -> int:
    from jooci.targets.pipeline import STEPS as LIBRARY_STEPS
    from jooci.targets.pipeline import TargetsConfig, make_targets
    from jooci.targets.sources import mfcc_source, model_source

    if args.out is None:
        raise ValueError("--out is required (or --quality with --labels)")
    if args.model is not None:
        if args.layer is None:
            raise ValueError("--model needs --layer")
        source = model_source(args.model, args.layer, device=args.device)
    else:
        if args.layer is not None:
            raise ValueError("--layer needs --model")
        source = mfcc_source()
    if args.rank is not None and args.step == "all":
        raise ValueError("--rank runs one shard: give --step dump or --step label (fit and merge run once, without --rank)")
    if args.rank is not None and not 0 <= args.rank < args.nshard:
        raise ValueError(f"--rank must be in [0, {args.nshard}), got {args.rank}")
    cfg = TargetsConfig(ks=parse_ks(args.k), fraction=args.fraction, seed=args.seed, backend=args.backend,
                        niter=args.niter, max_frames=args.max_frames, nshard=args.nshard,
                        batch_seconds=args.batch_seconds, threads=args.threads)
    steps = LIBRARY_STEPS if args.step == "all" else (args.step,)
    ranks = None if args.rank is None else [args.rank]
    record = make_targets(args.manifest, args.out, source, cfg, steps=steps, ranks=ranks,
                          centroids_from=args.centroids_from, progress=not args.no_progress)
    if record is None:
        print(f"step {args.step} done" + (f" for shard {args.rank} of {args.nshard}" if ranks else ""))
        return 0
    print(f"labels for {record['manifest']['utterances']} utterances, {record['frames']['total']} frames at "
          f"{record['label_rate']} Hz, validated against {args.manifest}:")
    for k, s in record["label_sets"].items():
        print(f"  K={k}: {args.out / s['labels']} ({s['clusters_used']} clusters used)")
    print(f"provenance: {args.out / 'targets.json'}")
    return 0


def _quality(args: argparse.Namespace) -> int:
    from jooci.targets.quality import quality_of_label_folder

    if args.labels is None:
        raise ValueError("--quality needs --labels DIR")
    _, table = quality_of_label_folder(args.manifest, args.labels)
    print(table)
    print(f"written: {args.labels / 'quality.json'}, {args.labels / 'quality.md'}")
    return 0
