"""Weight import against real references: HF transformers' HubertModel (run here), fairseq key
names (a synthetic checkpoint), and 3D-Speaker's RDINO ECAPA-TDNN (a small re-statement of its
forward pass with its module names, written for this test)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jooci.models import HuBERTBaseline, baseline_config
from jooci.models.convert import ConversionError, from_fairseq_hubert, from_hf_hubert, rdino_from_3dspeaker

transformers = pytest.importorskip("transformers")


def _hf(norm: str = "group", conv_bias: bool = False, layers: int = 2):
    torch.manual_seed(0)
    cfg = transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4,
        feat_extract_norm=norm, conv_bias=conv_bias)
    model = transformers.HubertModel(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mis-mapped one shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def _hf_states(model, wav: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return model(wav, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("norm,conv_bias", [("group", False), ("layer", True)])
def test_hf_hubert_parity_single_utterance(norm, conv_bias):
    hf = _hf(norm, conv_bias)
    ours = from_hf_hubert(hf)
    assert ours.cfg.frontend.norm_mode == norm and ours.cfg.frontend.conv_bias == conv_bias
    wav = torch.randn(1, 9000)
    ref = _hf_states(hf, wav)
    with torch.no_grad():
        got = ours.extract_features(wav).hidden_states
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-4


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_hf_hubert_parity_padded_batch_item_by_item(norm, pad):
    hf = _hf(norm)
    ours = from_hf_hubert(hf)
    items = [torch.randn(9000), torch.randn(6001), torch.randn(2500)]
    wav, lens = pad(items)
    with torch.no_grad():
        batch = ours.extract_features(wav, lens)
    for i, x in enumerate(items):
        ref = _hf_states(hf, x[None])  # HF alone on the item: no padding for its GroupNorm to see
        n = ref[0].shape[1]
        assert int(batch.lengths[i]) == n
        for a, b in zip(batch.hidden_states, ref):
            assert (a[i, :n] - b[0]).abs().max() <= 1e-4


def test_hf_state_dict_import_infers_the_config():
    hf = _hf()
    from_model = from_hf_hubert(hf)
    from_state = from_hf_hubert(hf.state_dict(), num_heads=4)
    assert from_state.cfg == from_model.cfg
    prefixed = {f"hubert.{k}": v for k, v in hf.state_dict().items()}  # a HubertForCTC's body
    assert from_hf_hubert(prefixed, num_heads=4).cfg == from_model.cfg


def test_hf_standard_config_maps_onto_the_base_preset():
    """The HuBERT-Base layout, checked by names and shapes only (no 94M-parameter init)."""
    with torch.device("meta"):
        hf = transformers.HubertModel(transformers.HubertConfig())
    state = {k: torch.empty(v.shape) for k, v in hf.state_dict().items()}
    from jooci.models import convert

    names = {
        "conv": r"^feature_extractor\.conv_layers\.(\d+)\.conv\.weight$", "conv_example": "",
        "conv_weight": "feature_extractor.conv_layers.{}.conv.weight",
        "layer_norm_1": "feature_extractor.conv_layers.1.layer_norm.weight",
        "conv_bias_0": "feature_extractor.conv_layers.0.conv.bias",
        "out_norm": "feature_projection.layer_norm.weight", "proj": "feature_projection.projection.weight",
        "layer": r"^encoder\.layers\.(\d+)\.", "fc1": "encoder.layers.0.feed_forward.intermediate_dense.weight",
        "pos_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    }
    frontend, content = convert._hubert_configs_from_state(state, names, 12, None, "hf")
    base = baseline_config("base")
    assert frontend == base.frontend and content == base.content
    mapped = convert._rename(state, convert._HF_RULES, "hf")
    with torch.device("meta"):
        ours = HuBERTBaseline(base).state_dict()
    upstream = {k: v for k, v in ours.items() if k.startswith(("frontend.", "content."))}
    assert set(mapped) == set(upstream)
    assert all(mapped[k].shape == upstream[k].shape for k in mapped)


def _to_fairseq(hf_state: dict) -> dict:
    """HF HubertModel keys -> fairseq HuBERT keys (group-norm extractor, old-style weight norm)."""
    out = {}
    for k, v in hf_state.items():
        k2 = (k.replace("feature_extractor.conv_layers.0.layer_norm.", "feature_extractor.conv_layers.0.2.")
              .replace(".conv.weight", ".0.weight")
              .replace("feature_projection.layer_norm.", "layer_norm.")
              .replace("feature_projection.projection.", "post_extract_proj.")
              .replace("masked_spec_embed", "mask_emb")
              .replace("encoder.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv.0.weight_g")
              .replace("encoder.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv.0.weight_v")
              .replace("encoder.pos_conv_embed.conv.bias", "encoder.pos_conv.0.bias")
              .replace(".attention.", ".self_attn.")
              .replace(".feed_forward.intermediate_dense.", ".fc1.")
              .replace(".feed_forward.output_dense.", ".fc2."))
        if k2.startswith("encoder.layers.") and ".layer_norm." in k2:
            k2 = k2.replace(".layer_norm.", ".self_attn_layer_norm.")
        out[k2] = v
    return out


def test_fairseq_checkpoint_import_matches_the_reference(tmp_path):
    hf = _hf()
    state = _to_fairseq(hf.state_dict())
    assert "feature_extractor.conv_layers.0.0.weight" in state and "encoder.pos_conv.0.weight_g" in state
    assert "encoder.layers.0.self_attn.k_proj.weight" in state and "mask_emb" in state
    state["final_proj.weight"] = torch.randn(8, 32)
    state["final_proj.bias"] = torch.randn(8)
    state["label_embs_concat"] = torch.randn(13, 8)
    path = tmp_path / "hubert.pt"
    cfg = {"model": {"encoder_attention_heads": 4, "conv_feature_layers": "[(16,10,5)] + [(16,3,2)]*4 + [(16,2,2)]*2",
                     "layer_norm_first": False}}
    torch.save({"model": state, "cfg": cfg}, path)
    ours = from_fairseq_hubert(path)
    wav = torch.randn(1, 7000)
    ref = _hf_states(hf, wav)
    with torch.no_grad():
        got = ours.extract_features(wav).hidden_states
    for a, b in zip(got, ref):
        assert (a - b).abs().max() <= 1e-4
    # the single label set's head came along
    assert ours.cfg.clusters.num_clusters == (13,)
    torch.testing.assert_close(ours.cluster_heads.predictors[0].codebook, state["label_embs_concat"])
    torch.testing.assert_close(ours.content.mask_embedding, state["mask_emb"])


def test_fairseq_refuses_pickled_objects_unless_trusted(tmp_path):
    import argparse

    state = _to_fairseq(_hf().state_dict())
    path = tmp_path / "hubert.pt"
    torch.save({"model": state, "args": argparse.Namespace(encoder_attention_heads=4)}, path)
    with pytest.raises(ConversionError, match="trust_pickle"):
        from_fairseq_hubert(path)
    model = from_fairseq_hubert(path, trust_pickle=True)
    assert model.cfg.content.transformer.num_heads == 4
    with pytest.raises(ConversionError, match="layer_norm_first"):
        from_fairseq_hubert({"model": state, "cfg": {"model": {"layer_norm_first": True}}})


def test_converters_refuse_mismatched_keys_and_shapes_naming_them():
    state = _hf().state_dict()
    missing = {k: v for k, v in state.items() if k != "encoder.layers.1.final_layer_norm.bias"}
    with pytest.raises(ConversionError, match=r"layers\.1\.final_norm\.bias"):
        from_hf_hubert(missing, num_heads=4)
    extra = dict(state, **{"encoder.layers.0.attention.rotary.weight": torch.zeros(3)})
    with pytest.raises(ConversionError, match="rotary"):
        from_hf_hubert(extra, num_heads=4)
    wrong = dict(state)
    wrong["encoder.layers.0.attention.q_proj.bias"] = torch.zeros(31)
    with pytest.raises(ConversionError, match=r"q_proj\.bias \(31,\)"):
        from_hf_hubert(wrong, num_heads=4)
    fs = _to_fairseq(state)
    fs["encoder.layers.0.fc2.weight"] = torch.zeros(32, 65)
    with pytest.raises(ConversionError, match="fc2.weight"):
        from_fairseq_hubert({"model": fs})
    stable = transformers.HubertModel(transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, do_stable_layer_norm=True))
    with pytest.raises(ConversionError, match="do_stable_layer_norm"):
        from_hf_hubert(stable)


# ----------------------------------------------------------------------------- 3D-Speaker RDINO
# A compact restatement of 3D-Speaker's ECAPA_TDNN forward pass with its module names
# (``blocks.0.conv.conv``, ``blocks.1.res2net_block.blocks.0.norm.norm``, ``asp_bn.norm``, ...).

class _Conv(nn.Module):
    def __init__(self, i, o, k, d=1):
        super().__init__()
        self.conv = nn.Conv1d(i, o, k, dilation=d)
        self.p = d * (k - 1) // 2

    def forward(self, x):
        return self.conv(F.pad(x, (self.p, self.p), mode="reflect") if self.p else x)


class _BN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.BatchNorm1d(c)

    def forward(self, x):
        return self.norm(x)


class _TDNN(nn.Module):
    def __init__(self, i, o, k, d):
        super().__init__()
        self.conv, self.norm = _Conv(i, o, k, d), _BN(o)

    def forward(self, x):
        return self.norm(torch.relu(self.conv(x)))


class _Res2(nn.Module):
    def __init__(self, c, scale, k, d):
        super().__init__()
        self.scale = scale
        self.blocks = nn.ModuleList(_TDNN(c // scale, c // scale, k, d) for _ in range(scale - 1))

    def forward(self, x):
        ys, y = [], None
        for i, xi in enumerate(torch.chunk(x, self.scale, 1)):
            y = xi if i == 0 else self.blocks[i - 1](xi if i == 1 else xi + y)
            ys.append(y)
        return torch.cat(ys, 1)


class _SE(nn.Module):
    def __init__(self, c, s):
        super().__init__()
        self.conv1, self.conv2 = _Conv(c, s, 1), _Conv(s, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv2(torch.relu(self.conv1(x.mean(2, keepdim=True)))))


class _SERes2(nn.Module):
    def __init__(self, c, scale, se, k, d):
        super().__init__()
        self.tdnn1, self.res2net_block = _TDNN(c, c, 1, 1), _Res2(c, scale, k, d)
        self.tdnn2, self.se_block = _TDNN(c, c, 1, 1), _SE(c, se)

    def forward(self, x):
        return self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x)))) + x


class _ASP(nn.Module):
    def __init__(self, c, a):
        super().__init__()
        self.tdnn, self.conv = _TDNN(3 * c, a, 1, 1), _Conv(a, c, 1)

    def forward(self, x):
        t = x.shape[-1]
        mean, std = x.mean(2), torch.sqrt(((x - x.mean(2, keepdim=True)) ** 2).mean(2).clamp(1e-12))
        attn = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], 1)
        w = torch.softmax(self.conv(torch.tanh(self.tdnn(attn))), dim=2)
        m = (w * x).sum(2)
        s = torch.sqrt((w * (x - m[..., None]) ** 2).sum(2).clamp(1e-12))
        return torch.cat([m, s], 1)[..., None]


class _ECAPA3DSpeaker(nn.Module):
    def __init__(self, n_mels=20, c=32, mfa=96, emb=12, scale=8, se=8, att=8):
        super().__init__()
        self.instancenorm = nn.InstanceNorm1d(n_mels)
        self.blocks = nn.ModuleList([_TDNN(n_mels, c, 5, 1)] + [_SERes2(c, scale, se, 3, d) for d in (2, 3, 4)])
        self.mfa, self.asp, self.asp_bn = _TDNN(3 * c, mfa, 1, 1), _ASP(mfa, att), _BN(2 * mfa)
        self.fc = _Conv(2 * mfa, emb, 1)

    def forward(self, logmel):  # (B, n_mels, T) log-mel; 3D-Speaker takes the log itself first
        x = self.instancenorm(logmel)
        outs = []
        for b in self.blocks:
            x = b(x)
            outs.append(x)
        x = self.asp_bn(self.asp(self.mfa(torch.cat(outs[1:], 1))))
        return self.fc(x)[..., 0]




def _reference():
    torch.manual_seed(0)
    ref = _ECAPA3DSpeaker()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
    return ref.eval()


from jooci.models.heads import DINOHeadConfig  # noqa: E402

# 3D-Speaker's head is ~41M parameters; a small one keeps these tests fast.
SMALL_HEAD = DINOHeadConfig(in_dim=12, hidden_dim=16, feature_dim=16, bottleneck_dim=8, out_dim=10)


@pytest.mark.parametrize("wrap", ["bare", "teacher_ddp"])
def test_rdino_import_matches_3dspeaker_ecapa(wrap):
    ref = _reference()
    state = ref.state_dict()
    if wrap == "teacher_ddp":
        ckpt = {"teacher": {f"module.backbone.{k}": v for k, v in state.items()}
                | {"module.head.mlp.0.weight": torch.zeros(4, 12)}, "student": {}}
    else:
        ckpt = state
    model = rdino_from_3dspeaker(ckpt, head=SMALL_HEAD)
    e = model.cfg.encoder.ecapa
    assert (model.cfg.encoder.n_mels, e.channels, e.num_blocks, e.scale, e.mfa_dim, e.embed_dim) == (20, 32, 3, 8, 96, 12)
    logmel = torch.randn(2, 40, 20)
    with torch.no_grad():
        want = ref(logmel.transpose(1, 2))
        got = model.forward_features(logmel).embedding
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_imported_rdino_saved_as_a_teacher_folder_loads_as_the_same_teacher(tmp_path):
    """The README's route from 3D-Speaker weights to run.teacher_init."""
    from jooci.models.speaker import load_speaker_folder, save_speaker_folder

    imported = rdino_from_3dspeaker(_reference().state_dict(), head=SMALL_HEAD).eval()
    save_speaker_folder(imported, tmp_path / "rdino")
    loaded, center = load_speaker_folder(tmp_path / "rdino")
    assert loaded.cfg == imported.cfg and center is None  # no centre: phases 1-2 distil against zeros
    assert loaded.cfg.encoder.frontend == "3dspeaker_rdino" and loaded.frontend.kind == "3dspeaker_rdino"
    logmel = torch.randn(2, 40, 20)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(logmel).embedding,
                                   imported.forward_features(logmel).embedding)


def test_rdino_refuses_unknown_or_misshapen_keys():
    state = _reference().state_dict()
    with pytest.raises(ConversionError, match="blocks.2.extra.weight"):
        rdino_from_3dspeaker(dict(state, **{"blocks.2.extra.weight": torch.zeros(1)}), head=SMALL_HEAD)
    bad = dict(state)
    bad["blocks.2.se_block.conv2.conv.bias"] = torch.zeros(5)
    with pytest.raises(ConversionError, match=r"blocks\.1\.se\.conv2\.bias"):
        rdino_from_3dspeaker(bad, head=SMALL_HEAD)
    with pytest.raises(ConversionError, match="not a 3D-Speaker"):
        rdino_from_3dspeaker({"foo": torch.zeros(1)})


def test_an_imported_rdino_gets_3dspeakers_front_end():
    """3D-Speaker trained RDINO on torchaudio's mel spectrogram (features.rdino_log_mel, checked
    against numpy in test_features.py), not on jooci's Kaldi fbank; a default teacher keeps Kaldi."""
    from jooci.features import rdino_log_mel
    from jooci.models.speaker import SpeakerModel, speaker_config

    ref = _reference()
    model = rdino_from_3dspeaker(ref.state_dict(), head=SMALL_HEAD)
    assert model.cfg.encoder.frontend == "3dspeaker_rdino" and model.frontend.kind == "3dspeaker_rdino"
    assert SpeakerModel(speaker_config("tiny")).frontend.kind == "kaldi_fbank"
    g = torch.Generator().manual_seed(2)
    wav = 0.1 * torch.randn(1, 6400, generator=g)
    logmel, _ = rdino_log_mel(wav, num_mel_bins=20)
    with torch.no_grad():
        want = ref(logmel.transpose(1, 2))  # infer_sv_rdino: the backbone on the mel spectrogram
        got = model(wav).embedding
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_teacher_init_names_the_front_end_when_it_differs_from_the_config(tmp_path):
    """run.teacher_init: the imported teacher against a teacher section with the Kaldi front-end."""
    from dataclasses import replace
    from types import SimpleNamespace

    from jooci.models.speaker import save_speaker_folder
    from jooci.train.loop import load_teacher

    imported = rdino_from_3dspeaker(_reference().state_dict(), head=SMALL_HEAD)
    save_speaker_folder(imported, tmp_path / "rdino")
    # load_teacher reads only the config's teacher section (a PretrainConfig would also need a
    # JOOCI whose DINO head fits this small embedding)
    teacher, _ = load_teacher(tmp_path / "rdino", SimpleNamespace(teacher=imported.cfg))
    assert teacher.frontend.kind == "3dspeaker_rdino"
    kaldi = replace(imported.cfg, encoder=replace(imported.cfg.encoder, frontend="kaldi_fbank"))
    with pytest.raises(ValueError, match="teacher.encoder.frontend: '3dspeaker_rdino' in the folder, "
                                         "'kaldi_fbank' in the config"):
        load_teacher(tmp_path / "rdino", SimpleNamespace(teacher=kaldi))
