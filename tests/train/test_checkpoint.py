"""Checkpoints: safetensors weights, weights_only state, atomic write, pruning, exact RNG restore, a
damaged file named in one line."""

import random
import shutil

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
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000003", "step_00000004"]
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


def _damaged(tmp_path, name: str, data: bytes | None):
    """A finished checkpoint with ``name`` replaced by ``data`` (or its first half when None)."""
    path = save_checkpoint(tmp_path, 3, {"model": _model()}, {"step": 3, "sampler": {"epoch": 0}})
    f = path / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2] if data is None else data)
    return path


@pytest.mark.parametrize("name,data,problem", [
    ("weights.safetensors", None, "unreadable"),  # truncated
    ("weights.safetensors", b"not a safetensors file", "unreadable"),
    ("state.pt", None, "unreadable"),
    ("state.pt", b"garbage, not a zip archive", "unreadable"),
    ("meta.json", b'{"format_version": 1, "st', "unreadable"),
    ("meta.json", b'{"format_version": 1, "step": 3}', "no list of module names"),
    ("meta.json", b'{"format_version": 1, "step": 3, "modules": ["teacher"]}', "module 'model'"),
])
def test_a_damaged_checkpoint_names_the_file_and_the_problem(tmp_path, name, data, problem):
    path = _damaged(tmp_path, name, data)
    with pytest.raises(TrainStateError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert problem in message and "\n" not in message and "weights_only=False" not in message
    assert message.startswith(str(path / ("weights.safetensors" if "module 'model'" in problem else name)))


def test_resume_from_a_damaged_checkpoint_is_one_line_on_the_command_line(tmp_path, capsys):
    """``jooci pretrain --resume`` on a truncated checkpoint: one error line, no traceback."""
    import numpy as np
    import soundfile as sf

    from jooci.cli import main
    from jooci.data.manifest import Utterance, write_manifest

    rng = np.random.default_rng(0)
    utts = []
    for i in range(4):
        wav = tmp_path / f"u{i}.wav"
        sf.write(wav, (0.1 * rng.standard_normal(24000)).astype(np.float32), 16000)
        utts.append(Utterance(id=f"u{i}", path=str(wav), num_samples=24000, speaker=f"s{i % 2}"))
    write_manifest(utts, tmp_path / "m.jsonl")
    run = tmp_path / "run"
    weights = _damaged(run, "weights.safetensors", None) / "weights.safetensors"
    status = main(["pretrain", "--config", "tiny", "--phase", "teacher", "--out", str(run),
                   "--manifest", str(tmp_path / "m.jsonl"), "--resume", "run.device=cpu", "data.num_workers=0"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"jooci pretrain: error: {weights}: unreadable (")
    # a readable checkpoint without what the phase resumes from: named too, not a KeyError traceback
    shutil.rmtree(run / "checkpoints")
    ckpt = save_checkpoint(run, 3, {"other": _model()}, {"step": 3})
    assert main(["pretrain", "--config", "tiny", "--phase", "teacher", "--out", str(run), "--manifest",
                 str(tmp_path / "m.jsonl"), "--resume", "run.device=cpu", "data.num_workers=0"]) == 2
    err = capsys.readouterr().err
    assert err == f"jooci pretrain: error: {ckpt}: damaged or not this phase's checkpoint (no 'model' in it)\n"


def test_a_killed_writers_folders_are_cleared_and_pruning_renames_aside(tmp_path, monkeypatch):
    """A writer killed mid-save leaves `.step_N.tmp`, one killed mid-prune `.step_N.old`: the next
    save removes both. Pruning renames a checkpoint aside before deleting it, so a delete cut
    short never leaves a partial folder under a finished name."""
    import os

    m = _model()
    for name in (".step_00000009.tmp", ".step_00000001.old"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / name / "weights.safetensors").write_bytes(b"half")
    save_checkpoint(tmp_path, 2, {"m": m}, {}, keep=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002"]

    removed = []  # deletes that never happen, as in a writer killed before them
    monkeypatch.setattr(shutil, "rmtree", lambda p, **k: removed.append(os.path.basename(p)))
    save_checkpoint(tmp_path, 3, {"m": m}, {}, keep=1)
    assert ".step_00000002.old" in removed and "step_00000002" not in removed
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [".step_00000002.old", "step_00000003"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003"]  # the half-deleted one is no checkpoint
