"""Fuzz the config loaders: YAML files (load_config, configio.load_yaml) and key=value overrides.

A damaged config file is a ConfigError naming the file; a bad override is a ConfigError naming the
override.
"""

import dataclasses

import pytest
from fuzzkit import ODD_TOKENS, expect_clean, fuzz, inputs, write
from hypothesis import given
from hypothesis import strategies as st

from jooci.configio import ConfigError, flatten_dotted, load_yaml, parse_overrides, to_dict
from jooci.train.config import PretrainConfig, load_config, preset_path

ERRORS = (ConfigError,)


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    sizes: tuple[int, ...] = (1, 2)


@dataclasses.dataclass(frozen=True)
class Small:
    name: str = "x"
    steps: int = 3
    flag: bool = False
    mode: str | None = None
    inner: Inner = Inner()


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_config")
    tiny = preset_path("tiny").read_bytes()
    assert isinstance(load_config(preset_path("tiny")), PretrainConfig)
    small = b"name: y\nsteps: 5\nflag: true\nmode: fast\ninner:\n  rate: 0.5\n  sizes: [3, 4]\n"
    (d / "small.yaml").write_bytes(small)
    assert load_yaml(Small, d / "small.yaml").inner.sizes == (3, 4)
    return d, tiny, small


@fuzz(250)
@given(data=st.data())
def test_load_config(valid, data):
    d, tiny, _ = valid
    path = write(d / "fuzz.yaml", data.draw(inputs(tiny)))
    expect_clean(lambda: load_config(path), path, ERRORS)


@fuzz(150)
@given(data=st.data())
def test_load_yaml(valid, data):
    d, _, small = valid
    path = write(d / "fuzz_small.yaml", data.draw(inputs(small)))
    expect_clean(lambda: load_yaml(Small, path), path, ERRORS)


_DOTTED = sorted(flatten_dotted(to_dict(PretrainConfig())))
_VALUES = st.text(max_size=12) | st.sampled_from([t.decode("utf-8", "replace") for t in ODD_TOKENS])


@fuzz(250)
@given(args=st.lists(st.text(max_size=20) | st.tuples(st.sampled_from(_DOTTED + ["", "a..b", "model"]), _VALUES)
                     .map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4))
def test_overrides(valid, args):
    """Any list of strings as overrides: parsed, or a ConfigError naming the override; applied to the
    tiny preset, a config or a ConfigError naming the file."""
    try:
        parse_overrides(args)
    except ConfigError as e:
        assert any(repr(a) in str(e) for a in args), f"no override named in: {e}"
    path = preset_path("tiny")
    expect_clean(lambda: load_config(path, args), path, ERRORS)
