"""Shared fixtures for the evaluation tests: a small JOOCI-synth corpus, tiny checkpoints, and an
evaluation config with tiny epoch counts (the fast suite checks plumbing and ranges, not quality)."""

from __future__ import annotations

import pytest
import torch

from jooci.data.synth import SynthConfig, synthesize
from jooci.models import JOOCI
from jooci.models.baseline import HuBERTBaseline
from jooci.superb import EvalConfig, TaskSettings


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A 2-minute JOOCI-synth corpus with 12 speakers (train/dev/test, trials.txt)."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, SynthConfig(minutes=2, seed=0, speakers=12), workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_jooci(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_jooci")
    JOOCI.from_preset("tiny").save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory):
    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("tiny_baseline")
    HuBERTBaseline.from_preset("tiny").save_pretrained(d)
    return d


def fast_config(**kw) -> EvalConfig:
    """Two or three epochs per task: seconds for all five."""
    tasks = {
        "pr": TaskSettings(epochs=3, lrs=(1e-2, 3e-3), batch_frames=2000, eval_every=1),
        "asr": TaskSettings(epochs=2, lrs=(1e-2,), batch_frames=2000, eval_every=1),
        "sid": TaskSettings(epochs=4, lrs=(1e-2, 1e-3), batch_frames=2000, eval_every=2),
        "asv": TaskSettings(epochs=2, lrs=(3e-3,), batch_frames=2000, eval_every=1),
        "er": TaskSettings(epochs=4, lrs=(1e-2,), batch_frames=2000, eval_every=2),
    }
    return EvalConfig(**{"tasks": tasks, "progress": False, "tensorboard": False, **kw})


@pytest.fixture(scope="session")
def fast():
    """:func:`fast_config` as a fixture (test folders here are not packages)."""
    return fast_config


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Single-threaded: tiny heads on a shared 2-core machine run fastest on one thread."""
