"""DDP on CPU: two gloo processes under torchrun match one process, and a NaN on one rank is
skipped by both without a hang, leaving the two ranks' weights identical."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jooci.targets.pipeline import TargetsConfig, make_targets
from jooci.targets.sources import mfcc_source

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    cmd = [str(TORCHRUN), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
           str(_free_port()), str(WORKER), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed beside this Python")


def test_two_ranks_equal_one_process_with_the_combined_batch(tmp_path):
    ddp = _torchrun("step", str(tmp_path / "ddp.pt"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, str(WORKER), "step", str(tmp_path / "one.pt")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    a = torch.load(tmp_path / "ddp.pt", weights_only=True)
    b = torch.load(tmp_path / "one.pt", weights_only=True)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-5, f"largest parameter difference {worst:.2e}"
    from jooci.train.config import load_config
    from jooci.train.loop import PhaseInputs, build_phase_models

    torch.manual_seed(0)  # the same initial weights as the workers: the update really moved them
    fresh, _, _ = build_phase_models(load_config(None, []), "content", PhaseInputs())
    moved = max(float((fresh.state_dict()[k] - a[k]).abs().max()) for k in a)
    assert moved > 1e-3


def test_regulariser_statistics_span_both_ranks(tmp_path):
    """RDINO's regulariser under DDP is the one-process regulariser of the whole batch: value and
    gradient, with the ranks holding different numbers of utterances (3 and 2). Per-rank statistics
    give a different value (checked), so this fails without the gather."""
    ddp = _torchrun("reg", str(tmp_path / "ddp.pt"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, str(WORKER), "reg", str(tmp_path / "one.pt")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    a = torch.load(tmp_path / "ddp.pt", weights_only=True)
    b = torch.load(tmp_path / "one.pt", weights_only=True)
    assert torch.allclose(a["loss"], b["loss"], atol=1e-6)
    for k in ("weight", "bias"):
        assert torch.allclose(a[k], b[k], atol=1e-6), f"{k}: {float((a[k] - b[k]).abs().max()):.2e}"
    from jooci.losses.dino import rdino_regulariser

    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 8)
    g = torch.Generator().manual_seed(3)
    views = [torch.randn(5, 6, generator=g) for _ in range(2)]
    teacher = [torch.randn(5, 8, generator=g) for _ in range(2)]
    with torch.no_grad():
        rank0 = rdino_regulariser([layer(v[:3]) for v in views], [t[:3] for t in teacher], cov_normalizer=32)
    assert not torch.allclose(rank0.loss, b["loss"], atol=1e-3)


def test_targets_on_two_ranks_equal_one_process(synth_corpus, tmp_path):
    """Each rank dumps and labels its own half of the manifest; rank 0 fits k-means on the
    sample of all shards: the merged labels are a one-process run's, label for label."""
    run = _torchrun("targets", str(tmp_path / "two"), str(synth_corpus))
    assert run.returncode == 0, run.stderr[-3000:]
    two = tmp_path / "two"
    assert sorted(p.name for p in (two / "features").glob("*.json")) == ["feat_0_2.json", "feat_1_2.json"]
    assert sorted(p.name for p in (two / "labels").glob("*.km")) == [
        "k10_0_2.km", "k10_1_2.km", "k20_0_2.km", "k20_1_2.km"]
    one = tmp_path / "one"
    make_targets(synth_corpus / "all.jsonl", one, mfcc_source(), TargetsConfig(ks=(10, 20), fraction=1.0),
                 progress=False)
    for k in (10, 20):
        assert (two / f"k{k}.km").read_text() == (one / f"k{k}.km").read_text()
    assert json.loads((two / "targets.json").read_text())["nshard"] == 2


def test_a_rank_failing_in_the_targets_stops_both(synth_corpus, tmp_path):
    """Rank 1's dump fails: rank 1 reports its file, rank 0 stops at the same step saying another
    rank failed (not at the fit with a missing shard, nor after the process-group timeout)."""
    (tmp_path / "out").mkdir()
    run = _torchrun("targets", str(tmp_path / "out"), str(synth_corpus), "fail")
    assert run.returncode != 0
    assert "broken.wav" in (tmp_path / "out" / "error1.txt").read_text()
    rank0 = (tmp_path / "out" / "error0.txt").read_text()
    assert rank0.startswith("RankFailed:") and "dump step failed on another rank" in rank0
    assert not (tmp_path / "out" / "targets.json").exists()


def test_the_process_group_timeout_is_the_one_given(tmp_path):
    """With a 2 s timeout, rank 0 gives up on a barrier that rank 1 reaches 10 s late (PyTorch's
    default would wait 30 minutes, past this test's 180 s limit)."""
    run = _torchrun("timeout", str(tmp_path / "error.txt"))
    assert run.returncode != 0
    assert "timed out waiting 2000ms" in (tmp_path / "error.txt").read_text().lower()


def test_the_process_group_timeout_must_be_positive():
    from jooci.train.distributed import init_distributed

    with pytest.raises(ValueError, match="timeout must be > 0"):
        init_distributed("cpu", timeout=0)


@pytest.mark.parametrize("mode", ["nan", "nan-value"])
def test_nan_on_one_rank_is_skipped_by_both(synth_corpus, tmp_path, mode):
    labels = tmp_path / "labels"
    make_targets(synth_corpus / "all.jsonl", labels, mfcc_source(), TargetsConfig(ks=(10, 20), fraction=1.0), progress=False)
    run = _torchrun(mode, str(tmp_path / "run"), str(synth_corpus), str(labels))
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["skipped_steps"] == 1
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    assert "non-finite" in run.stderr
    # both ranks skipped the same step: their weights are still one model, bit for bit
    a = torch.load(tmp_path / "run" / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())
