"""ASR at demo scale on the fbank floor: protocols A (train, 20 epochs), B (pretrain + train,
20 epochs), C (pretrain + train, 40 epochs), D and E (as B, head width 128 and 256), F (as A,
head width 128). See README.md for the rules.

    python experiments/asr-demo-scale/asr_demo_scale.py --out runs/asr-demo-scale
    python experiments/asr-demo-scale/asr_demo_scale.py --out runs/asr-sessions --corpus runs/c3 --protocols F
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from jooci.data.manifest import read_manifest, write_manifest
from jooci.data.synth import SynthConfig, synthesize
from jooci.superb import runner

# name -> (ASR's training splits, epochs, head width; None: the default)
PROTOCOLS = {"A": ("train", 20, None), "B": ("pretrain+train", 20, None), "C": ("pretrain+train", 40, None),
             "D": ("pretrain+train", 20, 128), "E": ("pretrain+train", 20, 256), "F": ("train", 20, 128)}


def asr_folder(corpus: Path, out: Path, train: str) -> Path:
    """A manifest folder for ASR whose ``train.jsonl`` is the corpus's ``train`` split or
    ``pretrain`` + ``train``; ``dev`` and ``test`` as the corpus's."""
    if train == "train":
        return corpus
    out.mkdir(parents=True, exist_ok=True)
    utts = [u for name in train.split("+") for u in read_manifest(corpus / f"{name}.jsonl")]
    write_manifest(utts, out / "train.jsonl")
    for name in ("dev", "test"):
        write_manifest(read_manifest(corpus / f"{name}.jsonl"), out / f"{name}.jsonl")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speakers", type=int, default=48, help="synth speakers (default 48, the demo's)")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiplies every protocol's epochs (smoke tests)")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated subset (default all)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="an existing JOOCI-synth corpus instead of generating one (--minutes/--speakers/--seed unused)")
    args = p.parse_args(argv)
    corpus = args.corpus or synthesize(args.out / "corpus", SynthConfig(minutes=args.minutes, seed=args.seed,
                                                                         speakers=args.speakers), progress=False)
    settings = runner.default_settings()
    results = {}
    for name in args.protocols.split(","):
        train, epochs, width = PROTOCOLS[name]
        folder = asr_folder(corpus, args.out / f"data-{name}", train)
        n = max(1, round(epochs * args.epochs_scale))
        asr = dataclasses.replace(settings["asr"], epochs=n, width=width)
        cfg = runner.EvalConfig(tasks={**settings, "asr": asr},
                                probes=(), cache_dir=str(args.out / "cache"), progress=False, tensorboard=False)
        t0 = time.perf_counter()
        doc = runner.evaluate("fbank", folder, ["asr"], args.out / f"eval-{name}", cfg)
        r = doc["tasks"]["asr"]
        results[name] = {"train": train, "epochs": n, "width": width or 64, "train_utterances": r["num_train"], "wer": r["value"],
                         "wer_ci95": r["extra"]["ci95"], "cer": r["extra"]["cer"], "dev_wer": r["dev_value"],
                         "seconds": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(results[name]), flush=True)
    described = (json.loads((corpus / "synth.json").read_text())["config"] if args.corpus else
                 {"minutes": args.minutes, "seed": args.seed, "speakers": args.speakers})
    doc = {"corpus": described, "machine": {"cores": os.cpu_count()},
           "protocols": results}
    (args.out / f"asr_demo_scale-{'-'.join(results)}.json").write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
