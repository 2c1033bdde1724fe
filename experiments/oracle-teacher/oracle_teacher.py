"""Does JOOCI's wiring carry a teacher's speaker knowledge into SUPERB SID/ASV?

At demo scale the self-supervised RDINO teacher identifies the corpus's speakers no better than
the log-mel statistics both models read at their input (linear SID probe 83.5 vs 87.9 %,
``../sid-diagnostic/``), so the Other stream has nothing to add on SID. That is a
statement about the teacher. It does not show that a *better* teacher would help: the
distillation, the Other encoder's capacity or the SUPERB read-out (frame states, mean pooling)
could lose what the teacher knows. This script tests the wiring with a teacher that certainly
knows more than the statistics.

The *oracle teacher* is the small preset's speaker model (same ECAPA-TDNN and DINO head) trained
with speaker labels: cross-entropy of the head's prototype scores (cosine / 0.1) against the
speaker index, on the corpus's pretraining and SID-train utterances (speakers of SID; the SID
dev and test utterances and the held-out ASV speakers are never seen). It is a supervised
teacher, so it is a diagnostic, not a recipe: JOOCI's teacher is RDINO, and an external teacher
enters JOOCI exactly as here (``run.teacher_init``, the paper's set-up: RDINO was trained on other
data). Its DINO centre is zero. Phases 1 and 2 are then retrained from the demo's own Content
model with the preset's config unchanged, and the result is evaluated like every demo model.

Written before any result existed (2026-11-26). What would show what:
- the oracle's Other embedding reaches the teacher's SID probe and JOOCI's SUPERB SID beats the
  baseline over the seeds: the wiring carries speaker knowledge; the demo's SID gap comes from
  its teacher (the cause ``../sid-diagnostic/`` named);
- the Other *embedding* reaches the teacher but SUPERB SID does not move: the read-out (the
  Other frame states SUPERB's weighted sum sees, mean-pooled) loses it;
- the Other embedding stays far below the teacher: the distillation loses it.

Usage::

    python experiments/oracle-teacher/oracle_teacher.py runs/demo4/seed-0 [more demo folders] [--steps 300]
    python experiments/oracle-teacher/oracle_teacher.py runs/demo4/seed-{0,1,2,3} --summary FILE.json

Per folder it writes ``ablations/oracle-teacher/{teacher,phase1,phase2}``, evaluates into
``eval/jooci_oracle-teacher`` (so ``jooci demo --seeds`` summaries pick the row up) and writes
``ablations/oracle-teacher/speaker_check.json``: cosine trial EER and SID probe of the oracle
teacher and of the new JOOCI's Other embedding.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

NAME = "oracle-teacher"
TEMPERATURE = 0.1


def train_oracle(corpus: Path, out: Path, teacher_cfg, *, steps: int = 300, batch: int = 16,
                 crop_seconds: float = 3.0, lr: float = 1e-3, seed: int = 0,
                 splits: tuple[str, ...] = ("pretrain", "train")) -> Path:
    """A speaker model trained on speaker labels of ``splits``; saved as a teacher folder (zero DINO centre)."""
    import torch
    import torch.nn.functional as F

    from jooci.audio import SAMPLE_RATE, load_audio
    from jooci.fileio import atomic_dir
    from jooci.data.manifest import read_manifest, resolve
    from jooci.models.speaker import SpeakerModel, save_speaker_folder

    final = out / "final"
    if (final / "model.safetensors").exists():
        done = json.loads((out / "train_log.json").read_text()) if (out / "train_log.json").is_file() else {}
        made = {k: done[k] for k in ("steps", "splits") if k in done}
        want = {"steps": steps, "splits": list(splits)}
        if any(made[k] != want[k] for k in made):
            raise ValueError(f"{final} was trained with {made}, not {want}: use another folder")
        return final
    utts = [u for split in splits for u in read_manifest(corpus / f"{split}.jsonl")]
    speakers = sorted({u.speaker for u in utts})
    if len(speakers) > teacher_cfg.head.out_dim:
        raise ValueError(f"{len(speakers)} speakers but only {teacher_cfg.head.out_dim} prototypes")
    target = torch.tensor([speakers.index(u.speaker) for u in utts])
    audio = [torch.from_numpy(load_audio(resolve(u, corpus))) for u in utts]
    crop = int(crop_seconds * SAMPLE_RATE)

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = SpeakerModel(teacher_cfg).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    t0, log = time.perf_counter(), []
    for step in range(steps):
        idx = torch.randint(len(utts), (batch,), generator=g)
        wavs, lengths = torch.zeros(batch, crop), torch.zeros(batch, dtype=torch.long)
        for i, j in enumerate(idx.tolist()):
            a = audio[j]
            start = int(torch.randint(max(1, a.numel() - crop + 1), (1,), generator=g))
            piece = a[start:start + crop]
            wavs[i, :piece.numel()], lengths[i] = piece, piece.numel()
        logits = model(wavs, lengths).head.logits / TEMPERATURE  # the model's own log-mel front-end
        loss = F.cross_entropy(logits, target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        acc = float((logits.argmax(-1) == target[idx]).float().mean())
        log.append({"step": step + 1, "loss": round(loss.item(), 4), "acc": round(acc, 3)})
        if (step + 1) % 50 == 0:
            print(f"oracle teacher step {step + 1}/{steps}: loss {loss.item():.3f}, batch acc {acc:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_log.json").write_text(json.dumps({"speakers": speakers, "steps": steps, "splits": list(splits),
                                                    "seconds": time.perf_counter() - t0, "log": log}))
    with atomic_dir(final) as tmp:
        save_speaker_folder(model, tmp)  # zero DINO centre
    return final


def run(demo: Path, steps: int, preset: str = "small", overrides: list[str] | None = None) -> dict:
    from retrain_phases import retrain

    from jooci.superb.verify import sid_probe, verify
    from jooci.train.config import load_config, preset_path

    corpus = demo / "corpus"
    seed = json.loads((corpus / "synth.json").read_text())["config"]["seed"]
    folder = demo / "ablations" / NAME
    base = load_config(preset_path(preset), [f"data.corpus={corpus}", f"run.seed={seed}", "run.device=cpu"])
    t0 = time.perf_counter()
    teacher = train_oracle(corpus, folder / "teacher", base.teacher, steps=steps, seed=seed)
    t_teacher = time.perf_counter() - t0
    # phases 1-2 and the evaluation as for every retrained variant, with this teacher
    phases = retrain(demo, NAME, [f"run.teacher_init={teacher}", *(overrides or [])], preset)
    model = phases["model"]
    check = {}
    for name, src in (("oracle teacher", str(teacher)), ("jooci oracle-teacher Other embedding", model)):
        check[name] = dict(verify(src, corpus, label=name).to_dict(), sid_probe=sid_probe(src, corpus))
    out = {"demo": str(demo), "seed": seed, "teacher_steps": steps, "teacher_seconds": round(t_teacher, 1),
           "phases_seconds": phases["phases_seconds"], "speaker_check": check}
    (folder / "speaker_check.json").write_text(json.dumps(out, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demos", nargs="+", type=Path, help="finished jooci demo folders")
    p.add_argument("--steps", type=int, default=300, help="oracle teacher steps (default: the demo teacher's 300)")
    p.add_argument("--preset", default="small", help="the preset the demo folders were made with")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a config override for phases 1-2 (repeat for more; the recorded runs used none)")
    p.add_argument("--summary", type=Path, default=None,
                   help="only summarise finished folders over the seeds into this JSON file")
    args = p.parse_args(argv)
    if args.summary:  # the same summary as every retrained variant's, plus the speaker checks
        from retrain_phases import print_summary, summarise

        table = summarise(args.demos, NAME)
        table["speaker_check"] = {str(d): json.loads((d / "ablations" / NAME / "speaker_check.json").read_text())
                                  ["speaker_check"] for d in args.demos}
        args.summary.write_text(json.dumps(table, indent=1))
        print_summary({k: v for k, v in table.items() if k != "speaker_check"})
        return 0
    import torch

    torch.set_num_threads(2)
    for demo in args.demos:
        print(json.dumps(run(demo, args.steps, args.preset, args.overrides), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
