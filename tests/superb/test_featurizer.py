import pytest
import torch

from jooci.superb.featurizer import Featurizer, UpstreamInfo, layer_names, stack_states


def test_uniform_start_is_the_mean_of_the_states():
    f = Featurizer(4)
    x = torch.randn(4, 2, 7, 5)
    assert f.layer_weights() == pytest.approx([0.25] * 4)
    torch.testing.assert_close(f(x), x.mean(0))


def test_weights_are_a_softmax_and_learnable():
    f = Featurizer(3)
    with torch.no_grad():
        f.weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    x = torch.randn(3, 2, 4, 6)
    torch.testing.assert_close(f(x), (w[:, None, None, None] * x).sum(0))
    assert sum(f.layer_weights()) == pytest.approx(1.0)
    f(x).sum().backward()
    assert f.weights.grad is not None and f.weights.grad.abs().sum() > 0


def test_pooled_states_and_normalisation():
    f = Featurizer(2, normalize=True)
    x = 5 + 3 * torch.randn(2, 4, 8)  # (L, B, D): pooled statistics
    y = f(x, prepared=False)
    assert y.shape == (4, 8)
    torch.testing.assert_close(y, torch.nn.functional.layer_norm(x, (8,)).mean(0))
    with pytest.raises(ValueError, match="expected 2"):
        f(torch.randn(3, 4, 8))


def test_stack_refuses_mismatched_states():
    assert stack_states([torch.zeros(2, 3, 4)] * 3).shape == (3, 2, 3, 4)
    with pytest.raises(ValueError, match="one shape"):
        stack_states([torch.zeros(2, 3, 4), torch.zeros(2, 3, 5)])


def test_layer_selection():
    info = UpstreamInfo("m", "jooci", tuple(layer_names(3, 2)), 3, 2, 64, 1)
    assert info.layer_names == ("C0", "C1", "C2", "O1", "O2")
    assert info.select("all") == [0, 1, 2, 3, 4]
    assert info.select("content") == [0, 1, 2]
    assert info.select("other") == [3, 4]
    base = UpstreamInfo("b", "hubert_baseline", tuple(layer_names(3, 0)), 3, 0, 64, 1)
    with pytest.raises(ValueError, match="no 'other' hidden states"):
        base.select("other")
    with pytest.raises(ValueError, match="must be one of"):
        info.select("middle")
