import pytest
import torch
import torch.nn.functional as F

from jooci.models.other import OtherConfig, OtherEncoder, split_groups
from jooci.models.res2net import EcapaConfig, MaskedBatchNorm1d, SameConv1d, valid_mask
from jooci.models.speaker import SpeakerEncoder, SpeakerEncoderConfig

ECAPA = EcapaConfig(channels=32, num_blocks=3, se_channels=8, attention_channels=8, embed_dim=16)


def _randomise_bn(model: torch.nn.Module) -> None:
    """Running statistics away from (0, 1), so eval-mode BatchNorm is not the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, MaskedBatchNorm1d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)


def test_split_groups_is_contiguous_and_covers_every_layer():
    assert split_groups(12, 3) == [(1, 4), (5, 8), (9, 12)]
    assert split_groups(4, 2) == [(1, 2), (3, 4)]
    assert split_groups(5, 3) == [(1, 2), (3, 4), (5, 5)]
    with pytest.raises(ValueError):
        split_groups(2, 3)


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_same_conv_reflects_at_each_items_own_edges(dilation):
    conv = SameConv1d(3, 5, 3, dilation, "reflect")
    items = [torch.randn(3, 20), torch.randn(3, 11), torch.randn(3, 6)]
    x = torch.zeros(3, 3, 20)
    for i, it in enumerate(items):
        x[i, :, : it.shape[1]] = it
    lens = torch.tensor([20, 11, 6])
    y = conv(x, lens)
    for i, it in enumerate(items):
        ref = F.conv1d(F.pad(it[None], (dilation, dilation), mode="reflect"), conv.weight, conv.bias, dilation=dilation)
        torch.testing.assert_close(y[i, :, : it.shape[1]], ref[0], atol=1e-6, rtol=0)


def test_masked_batchnorm_training_statistics_ignore_padding():
    bn = MaskedBatchNorm1d(4)
    x = torch.randn(2, 4, 10)
    valid = valid_mask(torch.tensor([10, 6]), 10, x.dtype)
    x_junk = x.clone()
    x_junk[1, :, 6:] = 100.0
    y1 = bn(x, valid)
    rm1 = bn.running_mean.clone()
    bn2 = MaskedBatchNorm1d(4)
    y2 = bn2(x_junk, valid)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(rm1, bn2.running_mean)
    # statistics equal plain BatchNorm on the valid frames only
    flat = torch.cat([x[0], x[1, :, :6]], dim=1)
    torch.testing.assert_close(rm1, 0.1 * flat.mean(dim=1))


def _other() -> OtherEncoder:
    enc = OtherEncoder(OtherConfig(input_dim=24, content_dim=32, append_dim=8, ecapa=ECAPA))
    _randomise_bn(enc)
    return enc.eval()


def test_other_encoder_shapes():
    enc = _other()
    content = [torch.randn(2, 30, 32) for _ in range(6)]
    out = enc(torch.randn(2, 30, 24), torch.tensor([30, 20]), content)
    assert len(out.states) == 3 and all(s.shape == (2, 30, 32) for s in out.states)
    assert out.embedding.shape == (2, 16)
    with pytest.raises(ValueError, match="content_layers"):
        enc(torch.randn(2, 30, 24), torch.tensor([30, 20]), None)


def test_other_encoder_padded_batch_matches_items_alone(pad):
    enc = _other()
    lens = [37, 20, 3, 1]
    feats = [torch.randn(n, 24) for n in lens]
    layers = [[torch.randn(n, 32) for n in lens] for _ in range(6)]
    x, lengths = pad(feats)
    x[1, 20:] = 9.0
    content = [pad(layer)[0] for layer in layers]
    with torch.no_grad():
        batch = enc(x, lengths, content)
        for i, n in enumerate(lens):
            alone = enc(feats[i][None], torch.tensor([n]), [layer[i][None] for layer in layers])
            torch.testing.assert_close(batch.embedding[i], alone.embedding[0], atol=1e-5, rtol=1e-5)
            for b, a in zip(batch.states, alone.states):
                torch.testing.assert_close(b[i, :n], a[0], atol=1e-5, rtol=1e-5)
                assert b[i, n:].abs().sum() == 0


def test_other_encoder_zero_length_is_finite():
    enc = _other()
    out = enc(torch.randn(2, 8, 24), torch.tensor([8, 0]), [torch.randn(2, 8, 32)] * 3)
    assert torch.isfinite(out.embedding).all()
    assert all(torch.isfinite(s).all() and s[1].abs().sum() == 0 for s in out.states)


def test_appended_content_reaches_the_encoder_but_gets_no_gradient():
    enc = OtherEncoder(OtherConfig(input_dim=24, content_dim=32, append_dim=8, ecapa=ECAPA)).train()
    feats = torch.randn(2, 12, 24, requires_grad=True)
    content = [torch.randn(2, 12, 32, requires_grad=True) for _ in range(3)]
    out = enc(feats, torch.tensor([12, 12]), content)
    out.embedding.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert all(c.grad is None for c in content)
    # the Content group of block 1 changes block 1's output
    with torch.no_grad():
        enc.eval()
        a = enc(feats, torch.tensor([12, 12]), content).states[0]
        content2 = [content[0] + 1.0] + content[1:]
        b = enc(feats, torch.tensor([12, 12]), content2).states[0]
    assert (a - b).abs().max() > 1e-4


def test_speaker_encoder_padded_batch_and_zero_length(pad):
    enc = SpeakerEncoder(SpeakerEncoderConfig(n_mels=20, ecapa=ECAPA))
    _randomise_bn(enc)
    enc.eval()
    lens = [50, 31, 4]
    items = [torch.randn(n, 20) for n in lens]
    x, lengths = pad(items)
    with torch.no_grad():
        batch = enc(x, lengths)
        for i, it in enumerate(items):
            torch.testing.assert_close(batch[i], enc(it[None])[0], atol=1e-5, rtol=1e-5)
        zero = enc(torch.randn(2, 10, 20), torch.tensor([10, 0]))
    assert torch.isfinite(zero).all()
    with pytest.raises(ValueError, match="20"):
        enc(torch.randn(1, 10, 80))
