import pytest
import torch

from jooci.models._util import padding_mask
from jooci.models.content import ContentConfig, ContentEncoder
from jooci.models.transformer import TransformerConfig


def _content(layerdrop: float = 0.0) -> ContentEncoder:
    cfg = ContentConfig(input_dim=24, transformer=TransformerConfig(
        dim=32, num_layers=3, num_heads=4, ffn_dim=64, pos_conv_kernel=8, pos_conv_groups=4, layerdrop=layerdrop))
    return ContentEncoder(cfg)


def test_returns_input_plus_every_layer():
    enc = _content().eval()
    states = enc(torch.randn(2, 17, 24), torch.zeros(2, 17, dtype=torch.bool))
    assert len(states) == 4 and all(s.shape == (2, 17, 32) for s in states)


def test_padded_batch_matches_items_alone(pad):
    enc = _content().eval()
    items = [torch.randn(40, 24), torch.randn(23, 24), torch.randn(5, 24), torch.randn(1, 24)]
    x, lens = pad(items)
    x[1, 23:] = 7.0  # padding content must not matter
    with torch.no_grad():
        batch = enc(x, padding_mask(lens, x.shape[1]))
        for i, item in enumerate(items):
            alone = enc(item[None], torch.zeros(1, item.shape[0], dtype=torch.bool))
            n = item.shape[0]
            for b, a in zip(batch, alone):
                torch.testing.assert_close(b[i, :n], a[0], atol=1e-5, rtol=0)
                assert b[i, n:].abs().sum() == 0


def test_zero_length_item_is_finite():
    enc = _content().eval()
    x = torch.randn(2, 10, 24)
    states = enc(x, padding_mask(torch.tensor([10, 0]), 10))
    assert all(torch.isfinite(s).all() for s in states)
    assert all(s[1].abs().sum() == 0 for s in states)


def test_mask_embedding_replaces_only_masked_frames():
    enc = _content().eval()
    x = torch.randn(1, 12, 24)
    pad = torch.zeros(1, 12, dtype=torch.bool)
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, 3:6] = True
    with torch.no_grad():
        plain = enc(x, pad)[-1]
        masked = enc(x, pad, mask)[-1]
        x2 = x.clone()
        x2[0, 3:6] = torch.randn(3, 24)  # what was under the mask is invisible
        masked2 = enc(x2, pad, mask)[-1]
    assert (plain - masked).abs().max() > 1e-3
    torch.testing.assert_close(masked, masked2, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="mask"):
        enc(x, pad, mask[:, :5])


def test_eval_and_deterministic_pass_have_no_dropout_or_layerdrop():
    enc = _content(layerdrop=0.5)
    x, pad = torch.randn(2, 15, 24), torch.zeros(2, 15, dtype=torch.bool)
    enc.train()
    a = enc(x, pad, deterministic=True)
    b = enc(x, pad, deterministic=True)
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    enc.eval()
    c = enc(x, pad)
    assert all(torch.allclose(s, t, atol=1e-6) for s, t in zip(a, c))
    enc.train()
    with torch.no_grad():
        outs = {tuple(round(float(s.sum()), 3) for s in enc(x, pad)) for _ in range(8)}
    assert len(outs) > 1  # training mode is stochastic (dropout, LayerDrop)


def test_layerdrop_keeps_one_state_per_layer():
    enc = _content(layerdrop=1.0).train()  # every layer dropped
    x, pad = torch.randn(1, 9, 24), torch.zeros(1, 9, dtype=torch.bool)
    states = enc(x, pad)
    assert len(states) == 4
    assert all(torch.equal(states[0], s) for s in states[1:])
