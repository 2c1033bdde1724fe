import pytest
import torch
import torch.nn.functional as F

from jooci.features import log_mel
from jooci.models.frontend import (WAV2VEC2_CONV, ConvFrontend, FrontendConfig, MaskedGroupNorm, MelFrontend,
                                   build_frontend, conv_output_lengths)

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


def _check_padded_batch(fe, pad, items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, object]:
    """A padded batch (with garbage in the padding) gives each item's features alone, 0 after."""
    wav, lens = pad(items)
    wav[1, items[1].shape[0]:] = 5.0  # garbage in the padding must not matter
    with torch.no_grad():
        batch = fe(wav, lens)
        for i, x in enumerate(items):
            alone = fe(x[None])
            n = int(alone.lengths[0])
            assert int(batch.lengths[i]) == n
            torch.testing.assert_close(batch.features[i, :n], alone.features[0], atol=1e-5, rtol=0)
            assert batch.features[i, n:].abs().sum() == 0
    return wav, lens, batch


@pytest.mark.parametrize("mode", ["group", "layer"])
def test_padded_batch_gives_each_items_features_alone(mode, pad):
    _check_padded_batch(_frontend(mode), pad, [torch.randn(16000), torch.randn(9000), torch.randn(4100), torch.randn(500)])


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


# ---------------------------------------------------------------------------------------------
# The log-mel kind (the small preset's frontend)


def _mel_frontend() -> MelFrontend:
    fe = build_frontend(FrontendConfig(kind="mel", n_mels=40))
    assert isinstance(fe, MelFrontend)
    with torch.no_grad():
        fe.layer_norm.weight.add_(0.2 * torch.randn(40))
        fe.layer_norm.bias.add_(0.2 * torch.randn(40))
    return fe.eval()


def test_mel_frontend_frames_match_the_cnn_and_are_normalised_log_mel():
    fe = _mel_frontend()
    cfg = fe.cfg
    assert cfg.dim == 40 and cfg.stride == 320 == FrontendConfig().stride
    wav = 0.1 * torch.randn(1, 16000)
    out = fe(wav)
    assert out.lengths.tolist() == conv_output_lengths(torch.tensor([16000]), WAV2VEC2_CONV).tolist() == [49]
    assert out.features.shape == (1, 49, 40) and float(out.penalty) == 0.0
    mel, _ = log_mel(wav, rate=50, num_mel_bins=40)
    torch.testing.assert_close(out.features, fe.layer_norm(mel))
    for s in [399, 400, 719, 720, 32123]:
        assert int(fe(torch.randn(1, s)).lengths[0]) == int(conv_output_lengths(torch.tensor([s]), WAV2VEC2_CONV)[0])


def test_mel_frontend_keeps_the_spectral_shape_and_drops_only_the_level():
    """What the small preset relies on: a louder copy gives the same frames (LayerNorm per frame),
    while a different spectrum (a filtered copy) does not."""
    fe = _mel_frontend()
    wav = 0.1 * torch.randn(1, 16000)
    base = fe(wav).features
    torch.testing.assert_close(fe(4.0 * wav).features, base, atol=1e-4, rtol=0)
    lowpassed = F.avg_pool1d(wav[:, None], 8, stride=1, padding=4)[:, 0, :16000]
    assert (fe(lowpassed).features - base).abs().mean() > 0.1


def test_mel_frontend_padded_batch_gives_each_items_features_alone(pad):
    fe = _mel_frontend()
    items = [torch.randn(16000), torch.randn(9000), torch.randn(4100), torch.randn(500), torch.randn(300)]
    wav, lens, batch = _check_padded_batch(fe, pad, items)
    assert batch.lengths.tolist()[-1] == 0 and torch.isfinite(batch.features).all()
    # frames for the padded width, as the CNN gives (span masks are drawn for that width), even
    # when every item is shorter than the batch
    for extra in (0, 700):
        wide = F.pad(wav, (0, extra))
        expected = int(conv_output_lengths(torch.tensor([wide.shape[1]]), WAV2VEC2_CONV)[0])
        assert fe(wide, lens).features.shape[1] == expected


def test_mel_frontend_trains_only_its_norm_and_rejects_bad_input():
    fe = build_frontend(FrontendConfig(kind="mel"))
    assert [n for n, _ in fe.named_parameters()] == ["layer_norm.weight", "layer_norm.bias"]
    wav = torch.randn(2, 4000, requires_grad=True)
    fe(wav).features.pow(2).sum().backward()
    assert fe.layer_norm.weight.grad is not None and wav.grad is None  # the filterbank is fixed
    with pytest.raises(ValueError, match="batch, samples"):
        fe(torch.randn(2, 1, 800))
    with pytest.raises(ValueError, match="lengths"):
        fe(torch.randn(2, 800), torch.tensor([900, 10]))
    with pytest.raises(ValueError, match="kind 'mel'"):
        MelFrontend(FrontendConfig())


def test_mel_frontend_computes_the_filterbank_in_fp32_under_autocast():
    """Under bf16 autocast the frames are exactly the fp32 ones (the small preset's unnormalised
    kind); left to autocast, the filterbank matmul would round the power spectrum first."""
    fe = build_frontend(FrontendConfig(kind="mel", n_mels=40, output_norm=False))
    wav = 0.1 * torch.randn(2, 8000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = fe(wav)
    assert auto.features.dtype == torch.float32 and torch.equal(auto.features, fe(wav).features)
    mel, _ = log_mel(wav, rate=50, num_mel_bins=40)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        low = log_mel(wav, rate=50, num_mel_bins=40)[0]
    assert (low.float() - mel).abs().max() > 1e-3  # what autocast would otherwise do


def test_unnormalised_mel_frontend_is_the_log_mel_and_keeps_the_level():
    """The small preset's setting: loudness (a speaking-style cue) survives, as a constant shift."""
    fe = build_frontend(FrontendConfig(kind="mel", output_norm=False)).eval()
    assert list(fe.parameters()) == []
    wav = 0.1 * torch.randn(2, 16000)
    lens = torch.tensor([16000, 9000])
    out = fe(wav, lens)
    mel, n = log_mel(wav, lens, rate=50)
    assert out.lengths.tolist() == n.tolist()
    torch.testing.assert_close(out.features, mel)
    louder = fe(4.0 * wav, lens).features
    shift = (louder - out.features)[0]
    torch.testing.assert_close(shift, torch.full_like(shift, 2 * torch.log(torch.tensor(4.0)).item()), atol=1e-3, rtol=0)
