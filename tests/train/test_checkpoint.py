"""Checkpoints: safetensors weights, weights_only state, atomic write, pruning, exact RNG restore."""

import random

import numpy as np
import pytest
import torch

from jooci.train.checkpoint import (
    TrainStateError, latest_checkpoint, list_checkpoints, load_checkpoint, rng_state, save_checkpoint,
    set_rng_state,
)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def test_round_trip_with_optimizer(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path, 7, {"student": model}, {"optimizer": opt.state_dict(),
                                                              "sampler": {"epoch": 1, "position": 5}})
    assert path.name == "step_00000007" and (path / "weights.safetensors").exists()
    modules, state = load_checkpoint(path)
    fresh = _model()
    fresh.load_state_dict(modules["student"])
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    opt2.load_state_dict(state["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert state["step"] == 7 and state["sampler"] == {"epoch": 1, "position": 5}
    # the state file is readable by the safe loader alone
    assert torch.load(path / "state.pt", weights_only=True)["step"] == 7


def test_keeps_last_k_and_ignores_unfinished(tmp_path):
    m = _model()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"m": m}, {}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003", "step_00000004"]
    (tmp_path / "checkpoints" / "step_00000009.tmp").mkdir()  # a crash mid-write
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_rng_state_restores_every_generator(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    save_checkpoint(tmp_path, 1, {}, {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    _, state = load_checkpoint(latest_checkpoint(tmp_path))
    set_rng_state(state["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_errors(tmp_path):
    with pytest.raises(TrainStateError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="without dots"):
        save_checkpoint(tmp_path, 1, {"a.b": _model()}, {})
