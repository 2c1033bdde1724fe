"""``jooci extract``: hidden states of a model for every utterance of a manifest, in shards."""

from __future__ import annotations

import argparse

from jooci.cli.errors import reports_errors


def add_arguments(p: argparse.ArgumentParser) -> None:
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
                   help="fail if more than this fraction of files is unreadable or not as long as the manifest "
                        "says (default 0.05; 0: fail on the first)")
    p.add_argument("--chunk-seconds", type=float, default=30.0,
                   help="files longer than chunk + 2 x context run in windows of this many seconds (default 30)")
    p.add_argument("--context-seconds", type=float, default=5.0,
                   help="audio either side of a chunk its window also holds (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@reports_errors("extract")
def run(args: argparse.Namespace) -> int:
    from jooci.extract import extract_manifest

    summary = extract_manifest(args.model, args.manifest, args.out, layers=args.layers,
                               batch_seconds=args.batch_seconds, shard_size=args.shard_size, dtype=args.dtype,
                               device=args.device, max_skipped=args.max_skipped, progress=not args.no_progress,
                               chunk_seconds=args.chunk_seconds, context_seconds=args.context_seconds)
    print(f"{summary.num_utterances} utterances, {summary.num_frames} frames, layers {summary.layers} "
          f"-> {summary.out_dir} ({len(summary.shards)} shard(s), {len(summary.skipped)} file(s) skipped, "
          f"{summary.chunked} long file(s) in windows)")
    return 0
