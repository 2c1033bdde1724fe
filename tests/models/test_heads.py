import pytest
import torch

from jooci.models.heads import (
    ClusterHeadsConfig, ContentAdversary, DINOHead, DINOHeadConfig, MelDecoder, MelDecoderConfig,
    MultiClusterHead, RegulariserConfig, grad_reverse)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(5, requires_grad=True)
    (grad_reverse(x, 0.3) * torch.arange(5.0)).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * torch.arange(5.0))
    torch.testing.assert_close(grad_reverse(x, 0.3), x)


def test_cluster_heads_read_their_own_layers_and_give_cosine_logits():
    cfg = ClusterHeadsConfig(dim=16, num_clusters=(7, 11), layers=(1, 3), proj_dim=8, temperature=0.1)
    head = MultiClusterHead(cfg)
    states = [torch.randn(2, 5, 16) for _ in range(4)]
    logits = head(states)
    assert [l.shape for l in logits] == [(2, 5, 7), (2, 5, 11)]
    assert logits[0].abs().max() <= 10.0 + 1e-4  # |cos| / 0.1
    states2 = list(states)
    states2[2] = torch.randn(2, 5, 16)  # a layer no set reads
    assert all(torch.equal(a, b) for a, b in zip(logits, head(states2)))
    states2[3] = torch.randn(2, 5, 16)
    assert not torch.equal(logits[1], head(states2)[1])
    # logits are the cosine to each codeword over the temperature
    p = torch.nn.functional.normalize(head.predictors[0].proj(states[1]), dim=-1)
    c = torch.nn.functional.normalize(head.predictors[0].codebook, dim=-1)
    torch.testing.assert_close(logits[0], p @ c.T / 0.1)
    with pytest.raises(ValueError, match="layers"):
        head(states[:3])
    with pytest.raises(ValueError, match="label sets"):
        ClusterHeadsConfig(num_clusters=(1, 2), layers=(1,))


def test_dino_head_shapes_and_unit_prototypes():
    cfg = DINOHeadConfig(in_dim=12, hidden_dim=32, feature_dim=24, bottleneck_dim=8, out_dim=50)
    head = DINOHead(cfg)
    out = head(torch.randn(4, 12))
    assert out.features.shape == (4, 24) and out.logits.shape == (4, 50)
    w = head.prototypes.weight
    torch.testing.assert_close(w.norm(dim=1), torch.ones(50))
    out.logits.sum().backward()
    g = head.prototypes.parametrizations.weight.original0
    assert not g.requires_grad and g.grad is None  # norm_last_layer: prototype norms stay 1
    assert out.logits.abs().max() <= 1.0 + 1e-5  # unit bottleneck . unit prototype


def test_content_adversary_pushes_other_states_against_its_own_gradient():
    adv = ContentAdversary(RegulariserConfig(dim=8, hidden_dim=6, num_clusters=5))
    states = [torch.randn(2, 7, 8, requires_grad=True) for _ in range(3)]
    logits = adv(states, lambd=1.0)
    assert logits.shape == (2, 7, 5)
    logits.sum().backward()
    g_rev = states[0].grad.clone()
    for s in states:
        s.grad = None
    x = torch.stack([s for s in states]).mean(0)
    adv.net(x).sum().backward()
    torch.testing.assert_close(g_rev, -states[0].grad)
    assert adv.net[0].weight.grad is not None


def test_mel_decoder_shape():
    dec = MelDecoder(MelDecoderConfig(dim=8, hidden_dim=4, n_mels=80))
    assert dec([torch.randn(2, 9, 8)] * 2).shape == (2, 9, 80)


def test_content_adversary_confusion_pass_moves_the_states_only():
    """The confusion objective's encoder pass: same logits as the decoder's, gradient into the
    Other states, none into the decoder (it learns from its own cross-entropy only)."""
    adv = ContentAdversary(RegulariserConfig(dim=8, hidden_dim=6, num_clusters=5))
    states = [torch.randn(2, 7, 8, requires_grad=True) for _ in range(2)]
    logits = adv.confusion_logits(states)
    torch.testing.assert_close(logits, adv(states, lambd=0.0))
    logits.square().sum().backward()
    assert states[0].grad is not None and states[0].grad.abs().sum() > 0
    assert all(p.grad is None for p in adv.parameters())
    # and the decoder's own pass with lambda 0 trains the decoder but sends nothing into the states
    for s in states:
        s.grad = None
    adv(states, lambd=0.0).square().sum().backward()
    assert adv.net[0].weight.grad is not None
    assert states[0].grad is None or states[0].grad.abs().sum() == 0
