"""Teacher folders: writing one, and an untrained reference of a teacher's architecture."""

import json

import pytest
import torch

from jooci.models.speaker import (
    SpeakerModel, load_speaker_folder, save_speaker_folder, speaker_config, untrained_speaker_folder)


def _teacher(tmp_path, seed=7):
    torch.manual_seed(seed)
    model = SpeakerModel(speaker_config("tiny"))
    center = torch.randn(model.cfg.head.out_dim)
    save_speaker_folder(model, tmp_path / "teacher", center)
    return model, center


def test_a_saved_teacher_folder_loads_back_with_its_centre(tmp_path):
    model, center = _teacher(tmp_path)
    loaded, got = load_speaker_folder(tmp_path / "teacher")
    assert loaded.cfg == model.cfg and torch.equal(got, center)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    save_speaker_folder(model, tmp_path / "plain")  # no centre given: zeros
    assert torch.equal(load_speaker_folder(tmp_path / "plain")[1], torch.zeros(model.cfg.head.out_dim))


def test_untrained_reference_has_the_teachers_architecture_and_is_seeded(tmp_path):
    model, _ = _teacher(tmp_path)
    state = torch.random.get_rng_state()
    out = untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u0", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    ref, center = load_speaker_folder(out)
    assert ref.cfg == model.cfg and torch.equal(center, torch.zeros(model.cfg.head.out_dim))
    # not the teacher's weights: a fresh initialisation, the same for the same seed, another for another
    w = next(k for k in ref.state_dict() if k.endswith("weight") and ref.state_dict()[k].dim() > 1)
    assert not torch.equal(ref.state_dict()[w], model.state_dict()[w])
    again = load_speaker_folder(untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u0b", seed=0))[0]
    other = load_speaker_folder(untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u1", seed=1))[0]
    assert torch.equal(again.state_dict()[w], ref.state_dict()[w])
    assert not torch.equal(other.state_dict()[w], ref.state_dict()[w])


def test_untrained_reference_is_kept_and_rebuilt_when_asked_for_another_seed(tmp_path):
    _teacher(tmp_path)
    out = untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u", seed=0)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u", seed=0)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u", seed=3)
    assert json.loads((out / "untrained.json").read_text())["seed"] == 3
    assert not (tmp_path / "u.tmp").exists()


def test_untrained_reference_refuses_a_folder_that_holds_no_teacher(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "jooci"}))
    with pytest.raises(ValueError, match="not a speaker"):
        untrained_speaker_folder(tmp_path / "m", tmp_path / "u")
