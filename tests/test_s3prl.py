"""The s3prl upstream: the hidden_states contract, checked with s3prl's own Featurizer."""

import pytest
import torch

from jooci.models import JOOCI
from jooci.models.baseline import HuBERTBaseline
from jooci.s3prl import JOOCIUpstream, jooci_local


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny")
    JOOCI.from_preset("tiny").save_pretrained(d)
    return d


def test_contract_without_s3prl(tiny_dir):
    up = jooci_local(str(tiny_dir))
    wavs = [torch.randn(16000), torch.randn(9000)]
    with torch.no_grad():
        out = up(wavs)
    hs = out["hidden_states"]
    assert len(hs) == 5 and {tuple(h.shape) for h in hs} == {(2, 49, 64)}
    assert out["last_hidden_state"].shape == (2, 49, 64)
    assert len(out["content_hidden_states"]) == 3 and len(out["other_hidden_states"]) == 2
    assert out["PR"] is hs and out["SID"] is hs
    assert out["hidden_states_lengths"].tolist() == [49, 27]
    assert up.get_downsample_rates("hidden_states") == 320 and up.get_downsample_rates("ASV") == 320
    # padding-invariant: the short item gives what it gives alone
    with torch.no_grad():
        alone = up([wavs[1]])["hidden_states"][3][0]
    torch.testing.assert_close(hs[3][1, :27], alone, atol=1e-4, rtol=1e-4)
    with pytest.raises(FileNotFoundError, match="not a jooci model folder"):
        jooci_local(str(tiny_dir / "nope"))


def test_s3prl_featurizer_accepts_the_upstream(tiny_dir):
    interfaces = pytest.importorskip(
        "s3prl.upstream.interfaces",
        reason="s3prl is optional (install with `pip install --no-deps s3prl`; only s3prl.upstream.interfaces "
               "imports beside torch 2.13)")
    up = JOOCIUpstream(str(tiny_dir))
    featurizer = interfaces.Featurizer(up, feature_selection="hidden_states", upstream_device="cpu")
    assert featurizer.layer_num == 5 and featurizer.output_dim == 64 and featurizer.downsample_rate == 320
    wavs = [torch.randn(16000), torch.randn(12000)]
    with torch.no_grad():
        feats = featurizer(wavs, up(wavs))
    # s3prl cuts each item at round(len / 320) frames (50 and 38) of the padded batch of 49 frames;
    # the CNN gives 49 and 37 valid frames, a difference s3prl tolerates (< 5)
    assert [tuple(f.shape) for f in feats] == [(49, 64), (38, 64)]
    # weights start uniform: the sum is the mean of the states
    with torch.no_grad():
        hs = torch.stack(up(wavs)["hidden_states"]).mean(0)
    torch.testing.assert_close(feats[1], hs[1, : feats[1].shape[0]])
    # a task key and the baseline (Content states only) work the same way
    f_sid = interfaces.Featurizer(up, feature_selection="SID", upstream_device="cpu")
    assert f_sid.layer_num == 5
    base = JOOCIUpstream(HuBERTBaseline.from_preset("tiny"))
    assert interfaces.Featurizer(base, upstream_device="cpu").layer_num == 3


def test_a_teacher_folder_is_an_upstream_too(tmp_path):
    from jooci.models import SpeakerModel, speaker_config

    SpeakerModel(speaker_config("tiny")).save_pretrained(tmp_path / "teacher")
    up = jooci_local(str(tmp_path / "teacher"))
    with torch.no_grad():
        out = up([torch.randn(16000), torch.randn(9000)])
    assert len(out["hidden_states"]) == 2 and out["last_hidden_state"] is out["hidden_states"][-1]
    assert out["content_hidden_states"] == [] and out["hidden_states_lengths"].tolist() == [49, 27]
