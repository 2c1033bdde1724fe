"""bf16 autocast against fp32: the tiny preset's first losses agree within a stated tolerance.

Each phase trains BF16_STEPS steps from the same seed twice, ``run.precision=fp32`` and
``run.precision=bf16`` (CPU autocast; on a GPU the same loop uses CUDA autocast), on the same four
utterances. bf16 keeps 8 bits of mantissa (relative rounding 2^-9, about 0.2 %). The first loss
(the same weights, only the forward pass rounded) is within FIRST_TOL of fp32's; the next steps
follow a slightly different trajectory, within REL_TOL. The teacher phase's DINO loss is the most
sensitive: its teacher softmax at temperature 0.04 multiplies a logit's rounding error by 25, and
the EMA teacher and the centre carry a difference into every later step (measured on two inputs:
0.8 % and 2.5 % at the first step, 3.1 % and 12.6 % at most over five).
"""

import json
from pathlib import Path

import pytest

from jooci.data.manifest import read_manifest, write_manifest
from jooci.targets.pipeline import TargetsConfig, make_targets
from jooci.targets.sources import mfcc_source
from jooci.train.config import load_config
from jooci.train.distributed import DistInfo
from jooci.train.loop import PhaseInputs, train_phase

BF16_STEPS = 5
# The largest |bf16 - fp32| / |fp32| allowed for the first loss, and over the first BF16_STEPS.
FIRST_TOL = {"content": 0.01, "teacher": 0.05, "phase1": 0.01, "phase2": 0.01}
REL_TOL = {"content": 0.02, "teacher": 0.15, "phase1": 0.02, "phase2": 0.02}


def _cfg(corpus: Path, precision: str):
    phases = ("content", "teacher", "phase1", "phase2")
    return load_config(None, [
        f"data.corpus={corpus}", "data.manifests=[four.jsonl]", "data.batch_seconds=40", "data.crop_seconds=2",
        *(f"schedule.{p}.steps={BF16_STEPS}" for p in phases), *(f"schedule.{p}.lr=0.002" for p in phases),
        *(f"schedule.{p}.warmup_steps=2" for p in phases),
        "run.log_every=1", "run.checkpoint_every=1000", "run.device=cpu", f"run.precision={precision}"])


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder.parent / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(synth_corpus, tmp_path_factory):
    """Every phase trained in fp32 and in bf16 (final folders); phase 1 and 2 start from the fp32
    runs' models."""
    root = tmp_path_factory.mktemp("precision")
    manifest = root / "four.jsonl"  # not in the shared corpus folder, which other tests write to
    write_manifest(read_manifest(synth_corpus / "train.jsonl")[:4], manifest)
    labels = root / "targets"
    make_targets(manifest, labels, mfcc_source(), TargetsConfig(ks=(10, 20), fraction=1.0), progress=False)
    d, out = DistInfo(), {}
    for precision in ("fp32", "bf16"):
        cfg, r = _cfg(root, precision), root / precision
        out[precision, "content"] = train_phase(cfg, "content", r / "content", PhaseInputs(labels=labels), d,
                                                manifest=manifest, progress=False)
        out[precision, "teacher"] = train_phase(cfg, "teacher", r / "teacher", PhaseInputs(), d,
                                                manifest=manifest, progress=False)
    for precision in ("fp32", "bf16"):
        cfg, r = _cfg(root, precision), root / precision
        start = PhaseInputs(labels, out["fp32", "content"], out["fp32", "teacher"])
        out[precision, "phase1"] = train_phase(cfg, "phase1", r / "phase1", start, d, manifest=manifest,
                                               progress=False)
        then = PhaseInputs(labels, out["fp32", "phase1"], out["fp32", "teacher"])
        out[precision, "phase2"] = train_phase(cfg, "phase2", r / "phase2", then, d, manifest=manifest,
                                               progress=False)
    return out


@pytest.mark.parametrize("phase", ["content", "teacher", "phase1", "phase2"])
def test_bf16_losses_agree_with_fp32(runs, phase):
    a, b = _records(runs["fp32", phase]), _records(runs["bf16", phase])
    assert len(a) == len(b) == BF16_STEPS
    rel = [abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b)]
    worst = max(rel)
    print(f"{phase}: largest relative loss difference {worst:.4f}", [round(x["loss"], 4) for x in a],
          [round(y["loss"], 4) for y in b])
    assert rel[0] <= FIRST_TOL[phase], (phase, rel)
    assert worst <= REL_TOL[phase], (phase, rel)
    assert any(x["loss"] != y["loss"] for x, y in zip(a, b)), "bf16 autocast changed nothing: was it on?"
