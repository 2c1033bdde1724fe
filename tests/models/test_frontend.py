import pytest
import torch
import torch.nn.functional as F

from jooci.models.frontend import WAV2VEC2_CONV, ConvFrontend, FrontendConfig, MaskedGroupNorm, conv_output_lengths

TINY_CONV = ((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2


def _frontend(mode: str) -> ConvFrontend:
    fe = ConvFrontend(FrontendConfig(conv_layers=TINY_CONV, norm_mode=mode))  # type: ignore[arg-type]
    with torch.no_grad():  # non-trivial affine params, so a wrong norm cannot hide
        for n, p in fe.named_parameters():
            if "norm" in n:
                p.add_(0.2 * torch.randn_like(p))
    return fe.eval()


def test_conv_lengths_match_the_conv_formula_and_the_real_output():
    fe = _frontend("group")
    for s in [400, 401, 719, 720, 16000, 32000, 32123]:
        out = fe(torch.randn(1, s))
        assert out.features.shape[1] == int(out.lengths[0]) == int(conv_output_lengths(torch.tensor([s]), TINY_CONV)[0])
    # stride 320, receptive field 400 for the wav2vec2 stack
    assert FrontendConfig().stride == 320
    assert conv_output_lengths(torch.tensor([399, 400, 720, 16000]), WAV2VEC2_CONV).tolist() == [0, 1, 2, 49]


@pytest.mark.parametrize("mode", ["group", "layer"])
def test_padded_batch_gives_each_items_features_alone(mode, pad):
    fe = _frontend(mode)
    items = [torch.randn(16000), torch.randn(9000), torch.randn(4100), torch.randn(500)]
    wav, lens = pad(items)
    wav[1, 9000:] = 5.0  # garbage in the padding must not matter
    with torch.no_grad():
        batch = fe(wav, lens)
        for i, x in enumerate(items):
            alone = fe(x[None])
            n = int(alone.lengths[0])
            assert int(batch.lengths[i]) == n
            torch.testing.assert_close(batch.features[i, :n], alone.features[0], atol=1e-5, rtol=0)
            assert batch.features[i, n:].abs().sum() == 0


def test_unmasked_group_norm_would_leak_padding():
    """The reason MaskedGroupNorm exists: plain GroupNorm over a padded item changes its output."""
    x = torch.randn(1, 4, 20)
    padded = F.pad(x, (0, 30))
    plain = F.group_norm(padded, 4)[..., :20]
    assert (plain - F.group_norm(x, 4)).abs().max() > 1e-2
    gn = MaskedGroupNorm(4, 4)
    valid = torch.zeros(1, 50, 1)
    valid[:, :20] = 1
    torch.testing.assert_close(gn(padded, valid)[..., :20], gn(x, None), atol=1e-6, rtol=0)


def test_zero_and_short_lengths_give_zero_frames_without_nan():
    fe = _frontend("group")
    wav = torch.randn(3, 2000)
    out = fe(wav, torch.tensor([2000, 0, 399]))
    assert out.lengths.tolist()[1:] == [0, 0]
    assert torch.isfinite(out.features).all()
    assert out.features[1].abs().max() == 0 and out.features[2].abs().max() == 0
    tiny = fe(torch.randn(2, 100), torch.tensor([100, 50]))  # shorter than one receptive field
    assert tiny.lengths.tolist() == [0, 0] and torch.isfinite(tiny.features).all()


def test_gradient_into_the_cnn_is_scaled():
    torch.manual_seed(1)
    wav = torch.randn(2, 4000)
    grads = {}
    for mult in (1.0, 0.1):
        torch.manual_seed(2)
        fe = ConvFrontend(FrontendConfig(conv_layers=TINY_CONV, grad_mult=mult))
        fe(wav).features.pow(2).sum().backward()
        grads[mult] = fe.conv_layers[0].conv.weight.grad.clone()
        assert fe.layer_norm.weight.grad is not None
    scale = float(grads[1.0].abs().max())
    torch.testing.assert_close(grads[0.1], 0.1 * grads[1.0], rtol=1e-3, atol=1e-5 * scale)
    fe = ConvFrontend(FrontendConfig(conv_layers=TINY_CONV, grad_mult=0.0))
    fe(wav).features.sum().backward()
    assert fe.conv_layers[0].conv.weight.grad is None


def test_rejects_bad_input():
    fe = _frontend("layer")
    with pytest.raises(ValueError, match="batch, samples"):
        fe(torch.randn(2, 1, 800))
    with pytest.raises(ValueError, match="lengths"):
        fe(torch.randn(2, 800), torch.tensor([900, 10]))
