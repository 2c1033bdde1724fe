"""jooci.models._util.dropout: F.dropout's contract with a cheaper CPU mask."""

import pytest
import torch
import torch.nn.functional as F

from jooci.models._util import dropout


def test_inactive_or_zero_is_identity():
    x = torch.randn(3, 5)
    assert dropout(x, 0.1, False) is x
    assert dropout(x, 0.0, True) is x


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_drop_rate_and_expectation(p):
    torch.manual_seed(0)
    y = dropout(torch.ones(1_000_000), p, True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.003
    assert abs(y.mean().item() - 1.0) < 0.005
    kept = y[y != 0]
    levels = 1 << 16
    assert torch.allclose(kept, torch.full_like(kept, levels / (levels - round(p * levels))))


def test_seeded_and_gradient_is_the_mask():
    x = torch.randn(4, 7, 9, requires_grad=True)
    torch.manual_seed(3)
    a = dropout(x, 0.2, True)
    torch.manual_seed(3)
    b = dropout(x, 0.2, True)
    assert torch.equal(a, b)
    (g,) = torch.autograd.grad(a.sum(), x)
    assert torch.allclose(g * x, a)  # d(x * m)/dx = m


def test_p_one_drops_everything():
    assert torch.count_nonzero(dropout(torch.ones(10), 1.0, True)) == 0
    assert F.dropout(torch.ones(3), 1.0, True).sum() == 0
