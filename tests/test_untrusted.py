"""Untrusted files: no loader of jooci unpickles a file a user was handed.

Every loader is given a crafted file whose unpickling would run code (``__reduce__`` -> ``exec``,
which creates a marker file) in the place of what it expects: the raw pickle, the same pickle in
``torch.save``'s zip, and an object ``.npy``. Each loader refuses it with jooci's own error naming
the file, and the marker is never created. The sanity tests first show each payload is live: the
unsafe reader (``pickle.loads``, ``torch.load(weights_only=False)``, ``np.load(allow_pickle=True)``,
``yaml.unsafe_load``) does create the marker.

The loaders (``grep -rn "torch.load\\|pickle\\|yaml\\|np.load\\|safetensors" src``):

- model folders (``jooci.hub.load``, ``Pretrained.from_pretrained``, ``read_weights``): safetensors;
- training checkpoints (``load_checkpoint``): safetensors weights, ``torch.load(weights_only=True)``
  state;
- foreign checkpoints (``from_fairseq_hubert``, ``rdino_from_3dspeaker``): ``weights_only=True``,
  else refused naming ``trust_pickle``;
- feature stores and the SUPERB feature cache (``open_store``, ``FeatureBank``): ``np.load(allow_pickle=False)``;
- k-means centroids (``make_targets``'s label step, ``--centroids-from``): ``np.load(allow_pickle=False)``;
- configs (``load_config``, ``configio.load_yaml``, ``parse_overrides``): ``yaml.safe_load``.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from jooci.configio import ConfigError, load_yaml, parse_overrides
from jooci.data.manifest import Utterance
from jooci.models import SpeakerModel, speaker_config
from jooci.models.convert import ConversionError, from_fairseq_hubert, rdino_from_3dspeaker
from jooci.models.folder import CheckpointError, read_weights
from jooci.store import StoreError, StoreWriter, open_store
from jooci.train.checkpoint import TrainStateError, load_checkpoint, save_checkpoint
from jooci.train.config import PretrainConfig, load_config, preset_path


class _Exploit:
    """Unpickling this runs ``open(marker, "w")``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a loader ran code from the file"


def _pickle(marker) -> bytes:
    return pickle.dumps({"model": {}, "cfg": _Exploit(marker)}, protocol=2)


def _torch_zip(marker) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(2)}, "args": _Exploit(marker)}, buf)
    return buf.getvalue()


def _npy(marker) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


PAYLOADS = {"pickle": _pickle, "torch": _torch_zip, "npy": _npy}
YAML_PAYLOAD = "!!python/object/apply:builtins.exec [\"open({marker!r}, 'w').close()\"]"


# ------------------------------------------------------------------------- the payloads are live


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_payloads_run_code_when_unpickled(tmp_path, kind):
    marker = tmp_path / "pwned"
    blob = PAYLOADS[kind](marker)
    if kind == "pickle":
        pickle.loads(blob)  # noqa: S301 - the point of the test
    elif kind == "torch":
        torch.load(io.BytesIO(blob), weights_only=False)
    else:
        np.load(io.BytesIO(blob), allow_pickle=True)
    assert marker.exists()


def test_yaml_payload_runs_code_when_unsafely_loaded(tmp_path):
    marker = tmp_path / "pwned"
    yaml.unsafe_load(YAML_PAYLOAD.format(marker=str(marker)))
    assert marker.exists()


def _refused(call, error, path, *needles):
    with pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert str(path) in text, text
    for needle in needles:
        assert needle in text, text
    return info.value


# ------------------------------------------------------------------------- foreign checkpoints


@pytest.mark.parametrize("kind", ["pickle", "torch"])
@pytest.mark.parametrize("convert", [from_fairseq_hubert, rdino_from_3dspeaker], ids=["fairseq", "3dspeaker"])
def test_foreign_checkpoint_refused_naming_trust_pickle(tmp_path, marker, kind, convert):
    path = tmp_path / "model.pt"
    path.write_bytes(PAYLOADS[kind](marker))
    _refused(lambda: convert(path), ConversionError, path, "trust_pickle")


def test_foreign_checkpoint_that_weights_only_reads_cannot_exhaust_memory(tmp_path):
    """A file of plain dicts passes weights_only; its ``conv_feature_layers`` (which fairseq ``eval``s)
    is read by a small interpreter that refuses a list repeated 10^12 times (8 TB of pointers)."""
    path = tmp_path / "hubert.pt"
    torch.save({"model": {}, "cfg": {"model": {"conv_feature_layers": "[(512,3,2)] * 1000000000000"}}}, path)
    _refused(lambda: from_fairseq_hubert(path), ConversionError, path, "conv_feature_layers", "at most")


def test_torch_has_a_sound_weights_only_unpickler():
    """``weights_only=True`` is only as safe as torch's unpickler: before 2.6 it runs code from a
    crafted file (CVE-2025-32434), so pyproject.toml asks for torch>=2.6."""
    from packaging.version import Version

    assert Version(torch.__version__.split("+")[0]) >= Version("2.6"), (
        f"torch {torch.__version__}: torch.load(weights_only=True) is not safe on untrusted files "
        "before 2.6; upgrade torch before converting or resuming from a file you were handed")
    requires = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch>=2.6" in requires


# ------------------------------------------------------------------------- model folders


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("folder") / "teacher"
    SpeakerModel(speaker_config("tiny")).save_pretrained(d)
    return d


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_model_folder_weights_are_safetensors_only(tmp_path, marker, model_folder, kind):
    import shutil

    import jooci.hub

    d = tmp_path / "m"
    shutil.copytree(model_folder, d)
    assert jooci.hub.load(d) is not None  # the folder is good, until its weights are swapped
    weights = d / "model.safetensors"
    weights.write_bytes(PAYLOADS[kind](marker))
    for load in (jooci.hub.load, SpeakerModel.from_pretrained, read_weights):
        _refused(lambda: load(d), CheckpointError, weights, "unreadable")


# ------------------------------------------------------------------------- training checkpoints


@pytest.fixture
def checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "run", 1, {"net": torch.nn.Linear(2, 2)}, {"epoch": 0})
    modules, state = load_checkpoint(path)
    assert state["step"] == 1 and set(modules) == {"net"}
    return path


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_training_state_loads_weights_only(marker, checkpoint, kind):
    state = checkpoint / "state.pt"
    state.write_bytes(PAYLOADS[kind](marker))
    _refused(lambda: load_checkpoint(checkpoint), TrainStateError, state, "unreadable")


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_training_weights_are_safetensors_only(marker, checkpoint, kind):
    weights = checkpoint / "weights.safetensors"
    weights.write_bytes(PAYLOADS[kind](marker))
    _refused(lambda: load_checkpoint(checkpoint), TrainStateError, weights, "unreadable")


# ------------------------------------------------------------------------- feature stores, cache


def _store(root, layers=(0, 1)):
    w = StoreWriter(root, layers=list(layers), dtype="float16", shard_size=2)
    for i in range(3):
        w.add(f"{i}", {k: np.full((4 + i, 3), k, np.float32) for k in layers})
    w.close()
    return root


@pytest.mark.parametrize("kind", ["npy", "pickle"])
def test_feature_store_refuses_object_arrays(tmp_path, marker, kind):
    root = _store(tmp_path / "store")
    assert len(open_store(root)) == 3
    array = root / "shard_00000.layer01.npy"
    assert array.exists()
    array.write_bytes(PAYLOADS[kind](marker))
    _refused(lambda: open_store(root), StoreError, array, "unreadable feature array")


def test_superb_cache_ignores_a_chunk_with_object_arrays(tmp_path, marker, caplog):
    from jooci.superb.cache import FeatureBank

    chunk = _store(tmp_path / "cache" / "chunk_0000")
    (chunk / "paths.json").write_text(json.dumps([[f"/a/{i}.wav", 16000] for i in range(3)]))
    utt = Utterance(id="a", path="/a/1.wav", num_samples=16000)
    assert utt in FeatureBank(tmp_path / "cache", [0, 1])
    (chunk / "shard_00000.layer00.npy").write_bytes(_npy(marker))
    with caplog.at_level(logging.WARNING, logger="jooci.superb.cache"):
        bank = FeatureBank(tmp_path / "cache", [0, 1])
    assert utt not in bank, "the damaged chunk is ignored (and extracted again)"
    assert "ignoring a cache chunk" in caplog.text and "shard_00000.layer00.npy" in caplog.text


def test_centroids_refuse_object_arrays(tmp_path, marker):
    from jooci.store import ShardWriter
    from jooci.targets.dump import shard_prefix
    from jooci.targets.kmeans import KMeansError
    from jooci.targets.labels import centroids_file
    from jooci.targets.pipeline import TargetsConfig, make_targets
    from jooci.targets.sources import mfcc_source

    out = tmp_path / "targets"
    with ShardWriter(shard_prefix(out / "features", 0, 1)) as w:
        w.add("u0", np.zeros((5, 39), np.float32))
    path = centroids_file(out, 2)
    path.write_bytes(_npy(marker))
    utts = [Utterance(id="u0", path=str(tmp_path / "u0.wav"), num_samples=1680)]
    _refused(lambda: make_targets(tmp_path / "m.jsonl", out, mfcc_source(), TargetsConfig(ks=(2,)),
                                  steps=("label",), utts=utts, progress=False), KMeansError, path)


def test_config_files_are_read_with_the_safe_loader(tmp_path, marker):
    payload = YAML_PAYLOAD.format(marker=str(marker))
    path = tmp_path / "evil.yaml"
    path.write_text(preset_path("tiny").read_text() + f"  name: {payload}\n")  # under `run:`
    _refused(lambda: load_config(path), ConfigError, path, "not valid YAML")
    path.write_text(f"preset: {payload}\n")
    _refused(lambda: load_yaml(PretrainConfig, path), ConfigError, path, "not valid YAML")


def test_overrides_are_read_with_the_safe_loader(marker):
    arg = "run.name=" + YAML_PAYLOAD.format(marker=str(marker))
    _refused(lambda: parse_overrides([arg]), ConfigError, repr(arg), "not valid YAML")
    _refused(lambda: load_config(preset_path("tiny"), [arg]), ConfigError, preset_path("tiny"), "not valid YAML")
