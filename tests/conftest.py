"""Fixtures shared by every test folder."""

import pytest
import torch

from jooci.data.manifest import read_manifest, write_manifest
from jooci.data.synth import SynthConfig, synthesize


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """A 1-minute JOOCI-synth corpus plus ``all.jsonl`` (every split, ~29 utterances, ~3100 frames)."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, SynthConfig(minutes=1, seed=0, speakers=8), workers=2, progress=False)
    utts = []
    for split in ("pretrain", "train", "dev", "test"):
        utts += read_manifest(root / f"{split}.jsonl", check_durations=False)
    write_manifest(utts, root / "all.jsonl")
    return root


@pytest.fixture(autouse=True)
def _fresh_warn_once(monkeypatch):
    """Every test starts with no warning already logged by jooci.data.dataset's once-per-process
    rule, so whether a test sees a warning does not depend on the tests before it."""
    import jooci.data.dataset

    monkeypatch.setattr(jooci.data.dataset, "_WARNED", set())


@pytest.fixture
def one_thread():
    """torch on one thread for the test: tiny models on a shared 2-core machine run fastest so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
