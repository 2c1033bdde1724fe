"""The model folder format (jooci.models.folder) and jooci.hub's load for any folder.

Save/load round trips of every model's outputs are in tests/test_upstreams.py.
"""

import json

import pytest
import torch

import jooci
import jooci.hub
from jooci.hub import CheckpointError
from jooci.models import JOOCI, HuBERTBaseline, SpeakerModel, speaker_config


@pytest.mark.parametrize("build", [lambda: JOOCI.from_preset("tiny"), lambda: HuBERTBaseline.from_preset("tiny"),
                                   lambda: SpeakerModel(speaker_config("tiny"))], ids=["jooci", "baseline", "speaker"])
def test_every_model_writes_the_one_versioned_format(tmp_path, build):
    model = build()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]  # no temp left
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta == {"model_type": model.model_type, "format_version": jooci.hub.FORMAT_VERSION,
                    "jooci_version": jooci.__version__, "config": model.cfg.to_dict()}
    assert jooci.hub.MODEL_TYPES[meta["model_type"]] is type(model)
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and not loaded.training and loaded.cfg == model.cfg
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert type(jooci.hub.save_pretrained(loaded, tmp_path / "again")) is type(tmp_path)


def test_a_teacher_folder_keeps_its_dino_centre_and_loads_through_jooci_load(tmp_path):
    from jooci.models.speaker import load_speaker_folder, save_speaker_folder

    torch.manual_seed(7)
    model = SpeakerModel(speaker_config("tiny"))
    center = torch.randn(1, model.cfg.head.out_dim)
    save_speaker_folder(model, tmp_path / "teacher", center)
    loaded, got = load_speaker_folder(tmp_path / "teacher")
    assert loaded.cfg == model.cfg and torch.equal(got, center.reshape(-1))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert type(jooci.load(tmp_path / "teacher")) is SpeakerModel
    save_speaker_folder(model, tmp_path / "plain")  # no centre given: none stored
    assert load_speaker_folder(tmp_path / "plain")[1] is None
    with pytest.raises(ValueError, match="stores no mean"):
        HuBERTBaseline.from_preset("tiny").save_pretrained(tmp_path / "x", {"mean": torch.zeros(1)})


def test_a_teacher_folder_of_the_earlier_writer_still_loads(tmp_path):
    """The teacher phase once wrote its folders by hand: the same two files, no jooci_version."""
    from safetensors.torch import save_file

    from jooci.models.speaker import load_speaker_folder

    model = SpeakerModel(speaker_config("tiny"))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["center"] = torch.ones(model.cfg.head.out_dim)
    (tmp_path / "old").mkdir()
    save_file(tensors, str(tmp_path / "old" / "model.safetensors"))
    (tmp_path / "old" / "config.json").write_text(json.dumps(
        {"model_type": "speaker", "format_version": 1, "config": model.cfg.to_dict()}, indent=1))
    loaded, center = load_speaker_folder(tmp_path / "old")
    assert torch.equal(center, torch.ones(model.cfg.head.out_dim)) and type(jooci.load(tmp_path / "old")) is SpeakerModel


def test_loading_the_wrong_class_or_a_bad_folder_fails_clearly(tmp_path):
    HuBERTBaseline.from_preset("tiny").save_pretrained(tmp_path / "b")
    with pytest.raises(TypeError, match="'hubert_baseline' model, not a JOOCI"):
        JOOCI.from_pretrained(tmp_path / "b")
    with pytest.raises(TypeError, match="not a jooci model"):
        jooci.hub.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "lin")
    with pytest.raises(CheckpointError, match="config.json"):
        jooci.hub.load(tmp_path / "missing")
    cfg_path = tmp_path / "b" / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["model_type"] = "wav2vec2"
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown model_type 'wav2vec2'; known: jooci, hubert_baseline, speaker"):
        jooci.hub.load(tmp_path / "b")
    meta["model_type"] = "hubert_baseline"
    meta["format_version"] = 99
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version"):
        jooci.hub.load(tmp_path / "b")
    meta["format_version"] = jooci.hub.FORMAT_VERSION
    meta["config"]["content"]["transformer"]["num_layers"] = 3  # weights no longer fit
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="layers.2"):
        jooci.hub.load(tmp_path / "b")
    meta["config"]["content"]["bogus"] = 1
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="bogus"):
        jooci.hub.load(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"not safetensors")
    meta["config"]["content"].pop("bogus")
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable"):
        jooci.hub.load(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        jooci.hub.load(tmp_path / "b")


def test_weights_that_do_not_fit_the_config_are_refused_by_name(tmp_path):
    from safetensors.torch import load_file, save_file

    HuBERTBaseline.from_preset("tiny").save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state.pop("content.projection.bias")
    state["stray.weight"] = torch.zeros(2)
    state["content.projection.weight"] = torch.zeros(3, 3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as info:
        jooci.hub.load(tmp_path)
    msg = str(info.value)
    assert "no place for stray.weight" in msg and "missing content.projection.bias" in msg
    assert "shape mismatch content.projection.weight (3, 3)" in msg
