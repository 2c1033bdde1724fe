"""Killed runs: `jooci pretrain` killed with SIGKILL while it writes a checkpoint, or between two,
resumes from its last finished checkpoint and ends exactly where an uninterrupted run ends.

The child process (tests/train/kill_worker.py) runs the real CLI and stops at a known point (half
of a checkpoint file written, or the start of a step) and waits; the test kills it there with
SIGKILL. The resumed run and the uninterrupted reference run in this process, on one thread, as
the child does: on one machine the losses and weights then agree bit for bit (asserted with ==).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import jooci.train.steps as steps
from jooci.cli import main
from jooci.data.manifest import read_manifest, write_manifest
from jooci.targets.pipeline import TargetsConfig, make_targets
from jooci.targets.sources import mfcc_source
from jooci.train.checkpoint import list_checkpoints, load_checkpoint
from jooci.train.config import load_config
from jooci.train.distributed import DistInfo
from jooci.train.loop import PhaseInputs, train_phase
from processes import kill_when_ready

STEPS, EVERY = 8, 3  # checkpoints at steps 3, 6 and 8
OVERRIDES = ["data.batch_seconds=4", "data.crop_seconds=2", f"schedule.content.steps={STEPS}",
             "schedule.content.warmup_steps=2", "run.log_every=1", f"run.checkpoint_every={EVERY}",
             "run.keep_checkpoints=3"]
WORKER = Path(__file__).with_name("kill_worker.py")
TIMING = "audio_seconds_per_second"  # the one logged value that is a clock reading


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture(scope="module")
def setup(synth_corpus, tmp_path_factory):
    """Four utterances, their k-means targets, and the uninterrupted reference run."""
    root = tmp_path_factory.mktemp("killed")
    manifest = root / "four.jsonl"
    write_manifest(read_manifest(synth_corpus / "train.jsonl")[:4], manifest)
    cfg = load_config(None, OVERRIDES)
    labels = root / "targets"
    make_targets(manifest, labels, mfcc_source(), TargetsConfig(ks=cfg.model.clusters.num_clusters, fraction=1.0),
                 progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_phase(cfg, "content", root / "straight", PhaseInputs(labels=labels), DistInfo(), manifest=manifest,
                    progress=False)
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "manifest": manifest, "labels": labels, "straight": root / "straight"}


def _cli_args(setup, run: Path) -> list[str]:
    return ["pretrain", "--phase", "content", "--out", str(run), "--manifest", str(setup["manifest"]),
            "--labels", str(setup["labels"]), *OVERRIDES]


def _run_and_kill(setup, run: Path, hook: str, at: int) -> int:
    """Start the CLI in a child process with ``hook``, wait until it stops there, SIGKILL it.
    Returns what the hook wrote into its ready file (the full size of the file cut in half)."""
    ready = run.parent / f"{run.name}.ready"
    cmd = [sys.executable, str(WORKER), hook, str(at), str(ready), "--", *_cli_args(setup, run)]
    return int(kill_when_ready(cmd, ready, run.parent / f"{run.name}.log", "its hook"))


def _records(run: Path) -> dict[int, dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps_logged = [r["step"] for r in records]
    assert steps_logged == sorted(set(steps_logged)), f"a step logged twice or out of order: {steps_logged}"
    return {r["step"]: {k: v for k, v in r.items() if k != TIMING} for r in records}


def _resume(setup, run: Path, monkeypatch, caplog) -> int:
    """Resume through the CLI (``--resume``: a checkpoint must be there); returns the number of
    training steps it ran (content steps; one micro-batch per step)."""
    calls = []
    real = steps.content_step
    monkeypatch.setattr(steps, "content_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    with caplog.at_level(logging.INFO, logger="jooci.train.loop"):
        assert main([*_cli_args(setup, run), "--resume"]) == 0
    return len(calls)


def _tensorboard_losses(run: Path) -> list[tuple[int, float]]:
    """(step, loss) of the content phase's TensorBoard events, as TensorBoard shows them (events a
    resumed run purged are left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("content/loss")]


def _same_as_uninterrupted(setup, run: Path) -> None:
    straight = setup["straight"]
    assert _records(run) == _records(straight)  # every logged loss and metric of every step, exactly
    shown = _tensorboard_losses(run)
    assert [s for s, _ in shown] == sorted({s for s, _ in shown}), f"a step shown twice in TensorBoard: {shown}"
    assert shown == _tensorboard_losses(straight)
    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(run / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in list_checkpoints(run)] == [p.name for p in list_checkpoints(straight)]
    left = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("."))
    assert left == [], f"the killed writer's temporary folders were not cleared: {left}"


def _intact(setup, run: Path, step: int) -> None:
    """The checkpoint of ``step`` loads, and is the uninterrupted run's checkpoint of that step."""
    modules, state = load_checkpoint(run / "checkpoints" / f"step_{step:08d}")
    ref_modules, ref_state = load_checkpoint(setup["straight"] / "checkpoints" / f"step_{step:08d}")
    assert state["step"] == step and state["sampler"] == ref_state["sampler"]
    assert modules.keys() == ref_modules.keys()
    for name in modules:
        assert all(torch.equal(modules[name][k], ref_modules[name][k]) for k in ref_modules[name]), name


@pytest.mark.parametrize("cut", ["weights.safetensors", pytest.param("state.pt", marks=[pytest.mark.slow, pytest.mark.reliability])])
def test_killed_while_writing_a_checkpoint_resumes_from_the_one_before(setup, tmp_path, monkeypatch, caplog, cut):
    run = tmp_path / "run"
    full = _run_and_kill(setup, run, "weights" if cut == "weights.safetensors" else "state", at=6)
    # killed mid-write: half of the file is on disk, in the temporary folder only
    partial = run / "checkpoints" / ".step_00000006.tmp" / cut
    assert 0 < partial.stat().st_size == full // 2
    assert [p.name for p in list_checkpoints(run)] == ["step_00000003"]
    _intact(setup, run, 3)
    assert max(_records(run)) == 6  # steps 4-6 were trained and logged before the kill
    ran = _resume(setup, run, monkeypatch, caplog)
    assert "resumed from step_00000003 (step 3)" in caplog.text
    assert ran == STEPS - 3  # steps 4-6 trained again: one checkpoint interval lost, no more
    _same_as_uninterrupted(setup, run)


def test_killed_between_checkpoints_loses_at_most_one_interval(setup, tmp_path, monkeypatch, caplog):
    """Killed at the start of step 6 (steps 1-5 done, last checkpoint at 3): the worst place
    between two checkpoints. The resumed run starts at step 3 and redoes steps 4-5."""
    run = tmp_path / "run"
    _run_and_kill(setup, run, "step", at=6)
    done = max(_records(run))
    assert done == 5 and [p.name for p in list_checkpoints(run)] == ["step_00000003"]
    _intact(setup, run, 3)
    ran = _resume(setup, run, monkeypatch, caplog)
    assert "resumed from step_00000003 (step 3)" in caplog.text
    start = STEPS - ran
    assert start == 3 and done - start < EVERY  # lost: steps 4-5, less than one interval
    _same_as_uninterrupted(setup, run)


@pytest.mark.skipif(__import__("multiprocessing").get_start_method() != "fork",
                    reason="the poisoned load_audio reaches the workers by fork only")
def test_a_dataloader_worker_killed_mid_file_is_one_line_naming_it(setup, tmp_path, monkeypatch, capsys):
    """`jooci pretrain` with data.num_workers=1 whose worker is killed (SIGKILL, as by the
    out-of-memory killer) while it reads one file: exit status 2 and one line naming that file,
    wherever in the main process torch reports the dead worker (the fetch, or the step)."""
    import jooci.data.dataset as D

    bad = read_manifest(setup["manifest"])[2]
    real, parent = D.load_audio, os.getpid()

    def load(path, *a, **k):
        if path == bad.path and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *a, **k)

    monkeypatch.setattr(D, "load_audio", load)
    status = main([*_cli_args(setup, tmp_path / "run"), "data.num_workers=1"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("jooci pretrain: error:")]
    assert len(lines) == 1, err
    assert f"died while reading {bad.path} (utterance {bad.id!r}): it was killed by SIGKILL" in lines[0], lines[0]
