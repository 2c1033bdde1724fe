"""jooci.configio: strict dataclass <-> dict/YAML conversion with dotted-key errors."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from jooci.configio import ConfigError, from_dict, load_yaml, parse_overrides, replace, save_yaml, to_dict


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    clip: float | None = None


@dataclass(frozen=True)
class Run:
    name: str = "run"
    steps: int = 10
    precision: Literal["fp32", "bf16"] = "fp32"
    optim: Optim = field(default_factory=Optim)
    layers: tuple[int, ...] = (1, 2)
    amp: bool = False


def test_round_trip_and_defaults():
    cfg = Run(name="x", optim=Optim(lr=0.5, clip=1.0))
    d = to_dict(cfg)
    assert d["optim"] == {"lr": 0.5, "betas": [0.9, 0.98], "clip": 1.0}
    assert from_dict(Run, d) == cfg
    assert from_dict(Run, {}) == Run()
    assert from_dict(Run, {"optim": {"lr": 1}}).optim.lr == 1.0  # int accepted for float


@pytest.mark.parametrize("data,message", [
    ({"stesp": 3}, "unknown key 'stesp'"),
    ({"optim": {"lrr": 3}}, "unknown key 'optim.lrr'"),
    ({"steps": "ten"}, "steps: expected an integer, got 'ten'"),
    ({"steps": 2.5}, "steps: expected an integer"),
    ({"amp": 1}, "amp: expected true/false"),
    ({"precision": "fp16"}, "precision: expected one of ['fp32', 'bf16']"),
    ({"optim": {"betas": [0.9]}}, "optim.betas: expected 2 items"),
    ({"layers": [1, "x"]}, "layers[1]: expected an integer"),
    ({"optim": 3}, "optim: expected a mapping"),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Run, data)
    assert message in str(info.value)


def test_overrides():
    assert parse_overrides(["optim.lr=3.0e-4", "layers=[4,5]", "name=abc"]) == {
        "optim.lr": 3e-4, "layers": [4, 5], "name": "abc"}
    cfg = replace(Run(), ["optim.lr=0.1", "steps=7"])
    assert cfg.optim.lr == 0.1 and cfg.steps == 7
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match="unknown key 'optim.momentum'"):
        replace(Run(), ["optim.momentum=0.9"])


def test_yaml_file(tmp_path):
    p = save_yaml(Run(steps=3), tmp_path / "c.yaml")
    assert load_yaml(Run, p, ["amp=true"]) == Run(steps=3, amp=True)
    p.write_text("steps: 3\nsetps: 4\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(Run, p)
    assert str(p) in str(info.value) and "'setps'" in str(info.value)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(Run, tmp_path / "none.yaml")


def test_exponent_without_dot_is_a_float():
    assert replace(Run(), ["optim.lr=3e-4"]).optim.lr == 3e-4


def test_flatten_dotted_inverts_set_dotted():
    from jooci.configio import flatten_dotted, set_dotted

    nested = {"model": {"frontend": {"kind": "mel", "n_mels": 80}}, "run": {"seed": 0}, "layers": [2, 4]}
    flat = flatten_dotted(nested)
    assert flat == {"model.frontend.kind": "mel", "model.frontend.n_mels": 80, "run.seed": 0, "layers": [2, 4]}
    rebuilt: dict = {}
    for key, value in flat.items():
        set_dotted(rebuilt, key, value)
    assert rebuilt == nested
