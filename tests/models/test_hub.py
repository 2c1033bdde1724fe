import json

import pytest
import torch

import jooci.hub
from jooci.hub import CheckpointError
from jooci.models import JOOCI, HuBERTBaseline


def _wav():
    lens = torch.tensor([12000, 8000])
    wav = torch.randn(2, 12000) * (torch.arange(12000)[None] < lens[:, None])
    return wav, lens


@pytest.mark.parametrize("cls", [JOOCI, HuBERTBaseline])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, cls):
    model = cls.from_preset("tiny")
    model.train()
    model(*_wav())  # move BatchNorm running statistics away from their init
    model.eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["model_type"] == cls.model_type and meta["format_version"] == jooci.hub.FORMAT_VERSION
    loaded = cls.from_pretrained(tmp_path / "m")
    assert not loaded.training
    any_loaded = jooci.hub.load(tmp_path / "m")
    assert type(any_loaded) is cls
    wav, lens = _wav()
    with torch.no_grad():
        a = model.extract_features(wav, lens)
        for other in (loaded, any_loaded):
            b = other.extract_features(wav, lens)
            assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_loading_the_wrong_class_or_a_bad_folder_fails_clearly(tmp_path):
    HuBERTBaseline.from_preset("tiny").save_pretrained(tmp_path / "b")
    with pytest.raises(TypeError, match="HuBERTBaseline"):
        JOOCI.from_pretrained(tmp_path / "b")
    with pytest.raises(CheckpointError, match="config.json"):
        jooci.hub.load(tmp_path / "missing")
    cfg_path = tmp_path / "b" / "config.json"
    meta = json.loads(cfg_path.read_text())
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


def test_weights_that_do_not_fit_the_config_are_refused_by_name(tmp_path):
    from safetensors.torch import load_file, save_file

    from jooci.hub import CheckpointError
    from jooci.models import HuBERTBaseline

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
