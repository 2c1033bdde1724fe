"""Hugging Face transformers folders as evaluation upstreams (jooci.superb.hf), checked against the
models' own forward: randomly initialised tiny HubertModel / WavLMModel / Wav2Vec2Model configs
(2 layers, width 32, the wav2vec 2.0 CNN's kernels and strides with 8 channels) written with
``save_pretrained``; the reference input is HF's own ``Wav2Vec2FeatureExtractor``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jooci.cli import main
from jooci.audio import load_audio
from jooci.superb import evaluate
from jooci.superb.cache import FeatureBank, load_upstream
from jooci.superb.data import DataFolder, task_splits
from jooci.superb.hf import HFUpstream, inspect_folder
from jooci.superb.report import markdown

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(8,) * 7,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
LAYER_NORM = dict(feat_extract_norm="layer", do_stable_layer_norm=True)
# name -> (config class, model class, config overrides); "group" = the base models' CNN norm
MODELS = {
    "wav2vec2-group": ("Wav2Vec2Config", "Wav2Vec2Model", {}),
    "wav2vec2-layer": ("Wav2Vec2Config", "Wav2Vec2Model", LAYER_NORM),
    "hubert-group": ("HubertConfig", "HubertModel", {}),
    "hubert-layer": ("HubertConfig", "HubertModel", LAYER_NORM),
    "wavlm-group": ("WavLMConfig", "WavLMModel", dict(num_buckets=16, max_bucket_distance=50)),
    "wavlm-layer": ("WavLMConfig", "WavLMModel", dict(num_buckets=16, max_bucket_distance=50, **LAYER_NORM)),
}
LENGTHS = (8000, 5300, 2400)
TOL = dict(atol=2e-5, rtol=1e-4)


def save_tiny(name: str, folder, seed: int = 0, **overrides):
    config_cls, model_cls, extra = MODELS[name]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**TINY, **extra, **overrides)).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> (folder, the HF model as saved)."""
    root = tmp_path_factory.mktemp("hf")
    return {name: (root / name, save_tiny(name, root / name, seed=i)) for i, name in enumerate(MODELS)}


def waves(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n) + 0.05).astype(np.float32) for n in LENGTHS]  # an offset: mean matters


def reference(model, wavs: list[np.ndarray], do_normalize: bool, mask: bool | None = None):
    """HF's own states: each utterance through its feature extractor, zero-padded to the longest,
    its forward (with the attention mask if ``mask``)."""
    fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize)
    items = [fe(w, sampling_rate=16000, return_tensors="pt")["input_values"][0] for w in wavs]
    x = torch.zeros(len(items), max(len(i) for i in items))
    attention = torch.zeros(x.shape, dtype=torch.long)
    for b, i in enumerate(items):
        x[b, : len(i)], attention[b, : len(i)] = i, 1
    if mask:  # as HF's batched feature extractor returns it (which normalises over the real samples then)
        batched = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize, return_attention_mask=True)(
            wavs, sampling_rate=16000, return_tensors="pt", padding=True)
        torch.testing.assert_close(batched["input_values"], x)
        assert torch.equal(batched["attention_mask"].long(), attention)
    with torch.no_grad():
        out = model(x, attention_mask=attention if mask else None, output_hidden_states=True)
    return out.hidden_states


def harness(upstream: HFUpstream, wavs: list[np.ndarray]):
    x = torch.zeros(len(wavs), max(len(w) for w in wavs))
    for i, w in enumerate(wavs):
        x[i, : len(w)] = torch.from_numpy(w)
    with torch.no_grad():
        return upstream.extract_features(x, torch.tensor([len(w) for w in wavs]))


@pytest.mark.parametrize("name", list(MODELS))
def test_states_equal_the_models_own_forward(name, folders):
    folder, model = folders[name]
    upstream, info, _ = load_upstream(str(folder))
    layer_norm = name.endswith("layer")
    assert upstream.do_normalize == upstream.attention_mask == layer_norm  # no preprocessor_config.json: defaults
    assert info.kind == f"hf-{name.split('-')[0]}" and info.layer_names == ("L0", "L1", "L2") and info.dim == 32
    assert info.num_parameters == sum(p.numel() for p in model.parameters())
    wavs = waves()

    # one utterance: exactly the model on its feature extractor's output
    for w in wavs:
        ours, ref = harness(upstream, [w]), reference(model, [w], layer_norm)
        assert len(ours.hidden_states) == len(ref) == 3
        for a, b in zip(ours.hidden_states, ref):
            torch.testing.assert_close(a, b, **TOL)
        assert int(ours.lengths[0]) == ref[0].shape[1] == (len(w) - 400) // 320 + 1

    # a padded batch
    batch = harness(upstream, wavs)
    n = batch.lengths.tolist()
    assert n == [(k - 400) // 320 + 1 for k in LENGTHS]
    assert batch.padding_mask.tolist() == [[t >= k for t in range(n[0])] for k in n]
    batched_ref = reference(model, wavs, layer_norm, mask=layer_norm)  # HF's batched use: mask iff "layer"
    for a, b in zip(batch.hidden_states, batched_ref):
        for i, k in enumerate(n):
            torch.testing.assert_close(a[i, :k], b[i, :k], **TOL)
    for i, w in enumerate(wavs):
        alone = harness(upstream, [w]).hidden_states
        if layer_norm or i == 0:
            # with the mask, padding changes nothing; without it, the unpadded longest item is itself
            for a, b in zip(batch.hidden_states, alone):
                torch.testing.assert_close(a[i, : n[i]], b[0], **TOL)
        else:
            # group norm without a mask: the padding enters the first layer's statistics (HF's documented
            # behaviour); the states differ from the item alone, which this test would notice
            assert not torch.allclose(batch.hidden_states[-1][i, : n[i]], alone[-1][0], atol=1e-4)


@pytest.mark.parametrize("normalize, mask", [(True, False), (False, True)])
def test_preprocessor_config_decides_normalisation_and_mask(tmp_path, folders, normalize, mask):
    """A folder's preprocessor_config.json overrides the defaults (as in WavLM Base+'s: a group-norm
    model with the mask), is fed as HF's feature extractor feeds it, and enters the fingerprint."""
    folder, model = folders["wavlm-group"]
    _, _, fp_default = load_upstream(str(folder))
    d = tmp_path / "with_pre"
    model.save_pretrained(d)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=normalize, return_attention_mask=mask).save_pretrained(d)
    upstream, info, fp = load_upstream(str(d))
    assert (upstream.do_normalize, upstream.attention_mask) == (normalize, mask)
    assert info.reading["settings_from"] == "preprocessor_config.json"
    wavs = waves()
    for a, b in zip(harness(upstream, wavs[1:2]).hidden_states, reference(model, wavs[1:2], normalize)):
        torch.testing.assert_close(a, b, **TOL)
    batch, ref = harness(upstream, wavs), reference(model, wavs, normalize, mask=mask)
    for a, b in zip(batch.hidden_states, ref):
        for i, k in enumerate(batch.lengths.tolist()):
            torch.testing.assert_close(a[i, :k], b[i, :k], **TOL)
    assert fp != fp_default  # another folder, another reading


def test_a_changed_model_gets_a_new_fingerprint(tmp_path):
    d = tmp_path / "m"
    save_tiny("hubert-group", d, seed=0)
    _, _, a = load_upstream(str(d))
    assert load_upstream(str(d))[2] == a  # stable
    save_tiny("hubert-group", d, seed=1)  # new weights in the same folder
    _, _, b = load_upstream(str(d))
    assert b != a and a.startswith("hf-hubert-") and b.startswith("hf-hubert-")


def test_cli_evaluates_an_hf_folder_end_to_end(corpus, tmp_path, folders, capsys):
    """``jooci evaluate --model HF_FOLDER --tasks sid``: results.json names the model and its kind, and
    the cached features are the model's own states (float16) for every utterance."""
    folder, model = folders["wavlm-layer"]
    out = tmp_path / "out"
    code = main(["evaluate", "--model", str(folder), "--data", str(corpus), "--tasks", "sid", "--out", str(out),
                 "--epochs", "sid=2", "--lr", "sid=1e-2", "--no-probes", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{folder.name} (hf-wavlm)" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is True and doc["tasks_requested"] == ["sid"]
    m = doc["model"]
    assert m["name"] == folder.name and m["kind"] == "hf-wavlm" and m["path"] == str(folder)
    assert m["layer_names"] == ["L0", "L1", "L2"] and m["n_content"] == m["n_other"] == 0
    assert m["hf"]["class"] == "WavLMModel" and m["hf"]["do_normalize"] and m["hf"]["attention_mask"]
    assert m["fingerprint"].startswith("hf-wavlm-")
    r = doc["tasks"]["sid"]
    assert 0 <= r["value"] <= 100 and len(r["layer_weights"]) == 3
    md = markdown([doc])
    assert (f"| {folder.name} | {folder.name} | hf-wavlm | 3 (L0..L2) | WavLMModel: normalised per utterance, "
            "attention mask |") in md
    assert "Incomplete runs" not in md

    bank = FeatureBank(out / "cache" / m["fingerprint"], [0, 1, 2])
    sid = task_splits("sid", DataFolder(corpus))
    for u in sid.train[:3] + sid.test[:3]:  # extracted in padded batches: the mask keeps them exact
        ref = reference(model, [load_audio(u.path)], do_normalize=True)
        cached = torch.from_numpy(bank.read(u).astype(np.float32))
        torch.testing.assert_close(cached, torch.stack(ref)[:, 0], atol=2e-2, rtol=2e-3)  # float16 cache


def test_layers_content_is_refused_for_an_hf_model(corpus, tmp_path, folders, fast):
    folder, _ = folders["hubert-group"]
    with pytest.raises(ValueError, match=r"layer selection 'content' .* not split .* use layer selection 'all'"):
        evaluate(folder, corpus, ["sid"], tmp_path / "o", fast(layers="content", probes=()))
    assert not (tmp_path / "o" / "cache").exists()  # refused before any extraction


def one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()  # what came before (save_pretrained's progress bar)
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("jooci evaluate: error: "), err
    return err[0]


def _argv(model, corpus, out, *extra):
    return ["evaluate", "--model", str(model), "--data", str(corpus), "--tasks", "sid", "--out", str(out),
            "--no-progress", *extra]


def test_bad_model_folders_are_one_line_errors(corpus, tmp_path, folders, capsys):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (bert / "model.safetensors").write_bytes(b"")
    line = one_line_error(capsys, _argv(bert, corpus, tmp_path / "o"))
    assert str(bert) in line and "model_type 'bert'" in line and "config.json, model.safetensors" in line
    assert "neither a jooci model folder" in line and "Hugging Face" in line

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("hello")
    line = one_line_error(capsys, _argv(stray, corpus, tmp_path / "o"))
    assert str(stray) in line and "no config.json" in line and "notes.txt" in line

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((folders["wav2vec2-group"][0] / "config.json").read_text())
    line = one_line_error(capsys, _argv(no_weights, corpus, tmp_path / "o"))
    assert str(no_weights) in line and "without weights" in line

    other_rate = tmp_path / "other_rate"
    save_tiny("wav2vec2-group", other_rate, conv_stride=(5, 2, 2, 2, 2, 2, 1))
    line = one_line_error(capsys, _argv(other_rate, corpus, tmp_path / "o"))
    assert "hop 160" in line and "50 Hz" in line

    line = one_line_error(capsys, _argv(folders["hubert-group"][0], corpus, tmp_path / "o", "--layers", "other"))
    assert "layer selection 'other'" in line and "hf-hubert" in line


def test_weights_that_leave_parameters_random_are_refused(tmp_path):
    """A folder whose weights lack parameters of the model would be evaluated half random: refused."""
    from safetensors.torch import load_file, save_file

    from jooci.superb.hf import UpstreamError

    d = tmp_path / "partial"
    save_tiny("hubert-group", d)
    state = load_file(str(d / "model.safetensors"))
    save_file({k: v for k, v in state.items() if "layers.1." not in k}, str(d / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(UpstreamError, match="not in the weights"):
        load_upstream(str(d))


def test_import_jooci_does_not_import_transformers():
    import subprocess
    import sys

    code = "import sys, jooci, jooci.superb, jooci.superb.hf, jooci.superb.cache; print('transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_inspect_folder_ignores_jooci_folders(tiny_jooci):
    assert inspect_folder(tiny_jooci) is None
