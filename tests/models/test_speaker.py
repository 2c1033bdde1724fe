"""The speaker model (the RDINO teacher): its own front-end, and an untrained reference of a
teacher's architecture. Its folder format is tested in test_hub.py, its upstream contract in
tests/test_upstreams.py."""

import json

import pytest
import torch

from jooci.features import log_mel
from jooci.models.speaker import (
    SpeakerModel, load_speaker_folder, save_speaker_folder, speaker_config, untrained_speaker_folder)


def _teacher(tmp_path, seed=7):
    torch.manual_seed(seed)
    model = SpeakerModel(speaker_config("tiny"))
    center = torch.randn(model.cfg.head.out_dim)
    save_speaker_folder(model, tmp_path / "teacher", center)
    return model, center


def test_waveforms_go_through_the_models_own_log_mel_with_its_n_mels():
    from dataclasses import replace

    cfg = speaker_config("tiny")
    model = SpeakerModel(replace(cfg, encoder=replace(cfg.encoder, n_mels=40))).eval()
    lens = torch.tensor([8000, 5000])
    wav = torch.randn(2, 8000) * (torch.arange(8000)[None] < lens[:, None])
    mel, frames = log_mel(wav, lens, rate=100, num_mel_bins=40)
    with torch.no_grad():
        a, b = model(wav, lens), model.forward_features(mel, frames)
    assert torch.equal(a.embedding, b.embedding) and torch.equal(a.head.logits, b.head.logits)
    assert model.frontend.output_lengths(lens).tolist() == frames.tolist()
    with pytest.raises(ValueError, match="forward_features"):
        model(mel, frames)  # log-mel frames given where waveforms go


def test_untrained_reference_has_the_teachers_architecture_and_is_seeded(tmp_path):
    model, _ = _teacher(tmp_path)
    state = torch.random.get_rng_state()
    out = untrained_speaker_folder(tmp_path / "teacher", tmp_path / "u0", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    ref, center = load_speaker_folder(out)
    assert ref.cfg == model.cfg and center is None
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
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "jooci", "format_version": 1, "config": {}}))
    with pytest.raises(ValueError, match="not a speaker"):
        untrained_speaker_folder(tmp_path / "m", tmp_path / "u")
