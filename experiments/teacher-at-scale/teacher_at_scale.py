"""An RDINO teacher trained outside the demo's budget, on a separate synthetic corpus.

The paper's teacher is an RDINO pretrained on VoxCeleb2, not trained within JOOCI's budget. At the
demo's budget the self-supervised teacher is barely a better speaker model than an untrained
network of its architecture (``../teacher-variants/``). This script is the next step on a
machine with more compute. It synthesises a teacher corpus with other speakers than the demo's
(another seed, more speakers and minutes), trains the small preset's RDINO teacher on all of it
for many steps, then measures the teacher on a demo corpus's dev sets, beside an untrained
network of its architecture: SID probe, dev-trial EER, DINO targets. A teacher that clearly beats
the untrained one can enter JOOCI through ``run.teacher_init``, e.g. via
``experiments/tools/retrain_phases.py ... --set run.teacher_init=OUT/teacher/final``.

``--exclude-voices-of CORPUS ...`` drops every teacher-corpus speaker whose espeak voice (accent and
variant, JOOCI-synth's voice quality) is also a voice of one of those corpora, so the teacher never
hears a demo speaker's voice, not even with another pitch and rate: as VoxCeleb's speakers are not
LibriSpeech's. Without it, about 60 % of a demo corpus's voices are in a 200-speaker teacher corpus.

Usage (a GPU machine; ``--workers`` feeds it from DataLoader processes)::

    python experiments/teacher-at-scale/teacher_at_scale.py --out runs/teacher-scale --demo-corpus runs/demo/corpus \\
        --minutes 600 --speakers 400 --steps 5000 --batch-seconds 64 --workers 8 --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SPLITS = ["pretrain.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "heldout_dev.jsonl"]


def voices(corpus: Path) -> set[tuple[str, str]]:
    """The (accent, variant) pairs of a JOOCI-synth corpus's speakers, held-out ones included."""
    return {(s["accent"], s["variant"]) for s in json.loads((corpus / "speakers.json").read_text())}


def disjoint_manifests(corpus: Path, others: list[Path]) -> tuple[list[str], dict]:
    """Write ``disjoint-<split>`` manifests into ``corpus`` without the speakers whose voice is a
    voice of ``others``; returns their names and what was kept."""
    from jooci.audio import SAMPLE_RATE
    from jooci.data.manifest import read_manifest, write_manifest

    excluded = set().union(*(voices(c) for c in others))
    speakers = json.loads((corpus / "speakers.json").read_text())
    keep = {s["id"] for s in speakers if (s["accent"], s["variant"]) not in excluded}
    names, seconds = [], 0.0
    for split in SPLITS:
        utts = [u for u in read_manifest(corpus / split, check_files=False) if u.speaker in keep]
        seconds += sum(u.num_samples for u in utts) / SAMPLE_RATE
        names.append(f"disjoint-{split}")
        write_manifest(utts, corpus / names[-1])
    return names, {"speakers": len(keep), "of": len(speakers), "minutes": round(seconds / 60, 1),
                   "excluded_voices": len(excluded), "from": [str(c) for c in others]}


def main(argv: list[str] | None = None) -> int:
    from jooci.data.synth import SynthConfig, synthesize
    from jooci.superb.verify import sid_probe, teacher_targets, untrained_speaker_folder, verify
    from jooci.train.config import load_config, preset_path
    from jooci.train.distributed import init_distributed
    from jooci.train.loop import PhaseInputs, pretraining_manifest, train_phase

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--demo-corpus", type=Path, required=True, help="the corpus the teacher is measured on (dev sets)")
    p.add_argument("--minutes", type=float, default=600.0)
    p.add_argument("--speakers", type=int, default=400)
    p.add_argument("--corpus-seed", type=int, default=1000, help="the teacher corpus's seed (not a demo's)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-seconds", type=float, default=64.0)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude-voices-of", type=Path, nargs="+", default=[], metavar="CORPUS",
                   help="drop teacher speakers whose voice (accent + variant) is in any of these corpora")
    p.add_argument("--preset", default="small", help="the preset whose teacher is trained")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    args = p.parse_args(argv)

    corpus = args.out / "corpus"
    t0 = time.perf_counter()
    synthesize(corpus, SynthConfig(minutes=args.minutes, seed=args.corpus_seed, speakers=args.speakers))
    t_corpus = time.perf_counter() - t0
    splits, kept = SPLITS, None
    if args.exclude_voices_of:
        splits, kept = disjoint_manifests(corpus, args.exclude_voices_of)
    cfg = load_config(preset_path(args.preset), [
        f"data.corpus={corpus}", f"data.manifests=[{', '.join(splits)}]", f"data.num_workers={args.workers}",
        f"run.device={args.device}", f"run.seed={args.seed}", f"schedule.teacher.steps={args.steps}",
        f"schedule.teacher.warmup_steps={max(1, args.steps // 10)}",
        f"schedule.teacher.batch_seconds={args.batch_seconds}", *args.overrides])
    dist = init_distributed(cfg.run.device)
    pretraining_manifest(cfg, args.out, dist)
    t0 = time.perf_counter()
    teacher = train_phase(cfg, "teacher", args.out / "teacher", PhaseInputs(), dist,
                          manifest=args.out / "manifest.jsonl")
    t_teacher = time.perf_counter() - t0
    untrained = untrained_speaker_folder(teacher, args.out / "untrained-teacher", seed=args.seed)
    rows = {}
    for name, folder in (("teacher", teacher), ("untrained", untrained)):
        dev = str(dist.device)
        rows[name] = {"sid": sid_probe(str(folder), args.demo_corpus, device=dev),
                      "eer_dev": verify(str(folder), args.demo_corpus, trials="dev", device=dev).eer,
                      "targets": teacher_targets(folder, args.demo_corpus, temp=cfg.losses.teacher_temp, device=dev)}
    log = [json.loads(x) for x in (args.out / "teacher" / "metrics.jsonl").read_text().splitlines()]
    out = {"corpus": {"minutes": args.minutes, "speakers": args.speakers, "seed": args.corpus_seed,
                      "seconds": round(t_corpus, 1), "kept": kept},
           "steps": args.steps, "batch_seconds": args.batch_seconds, "workers": args.workers,
           "device": str(dist.device), "overrides": args.overrides, "teacher_seconds": round(t_teacher, 1),
           "audio_seconds_per_second": log[-1].get("audio_seconds_per_second"),
           "distill_first_last": [log[0]["distill"], log[-1]["distill"]], **rows}
    (args.out / "measures.json").write_text(json.dumps(out, indent=1))
    for name in ("teacher", "untrained"):
        r = rows[name]
        print(f"{name:9s} SID probe dev/test {r['sid']['dev']:5.1f}/{r['sid']['test']:5.1f}  dev-trial EER "
              f"{r['eer_dev']:5.2f}  targets {r['targets']['entropy']:.2f}/{r['targets']['uniform']:.2f} nats, "
              f"top {r['targets']['top_prob']:.3f}")
    print(f"teacher: {args.steps} steps in {t_teacher:.0f} s ({out['audio_seconds_per_second']} audio s/s at the end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
