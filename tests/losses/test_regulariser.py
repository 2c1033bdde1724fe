import math

import pytest
import torch
from torch import nn

from jooci.losses import CosineSchedule, adversary_loss, confusion_loss, dann_lambda, reconstruction_loss

LN3 = math.log(3.0)


class _GRL(torch.autograd.Function):
    """Local gradient reversal (the real one lives in jooci.models.heads)."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def test_dann_lambda():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-6)
    assert dann_lambda(2.0) == dann_lambda(1.0) and dann_lambda(-1.0) == 0.0
    vals = [dann_lambda(p / 10) for p in range(11)]
    assert vals == sorted(vals)


def test_adversary_loss_by_hand():
    logits = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [0.0, 9.0]]])
    targets = torch.tensor([[1, 0, -100]])
    out = adversary_loss(logits, targets)
    assert out.loss.item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, abs=1e-6)
    assert out.accuracy == 0.5 and out.num_frames == 2
    pad = torch.tensor([[False, True, True]])
    assert adversary_loss(logits, targets, pad).loss.item() == pytest.approx(math.log(2), abs=1e-6)
    empty = adversary_loss(logits, targets, torch.ones(1, 3, dtype=torch.bool))
    assert empty.loss.item() == 0.0 and empty.num_frames == 0


def test_confusion_loss_by_hand_and_bounded_by_ln_k():
    # frame 1 uniform over 3 classes: ln 3; frame 2: -(log p) averaged over the classes
    logits = torch.tensor([[[0.0, 0.0, 0.0], [LN3, 0.0, 0.0], [50.0, 0.0, 0.0]]])
    p = torch.softmax(logits[0, 1], -1)
    frame2 = float(-p.log().mean())
    assert confusion_loss(logits[:, :2]).item() == pytest.approx((LN3 + frame2) / 2, abs=1e-6)
    pad = torch.tensor([[False, True, True]])
    assert confusion_loss(logits, pad).item() == pytest.approx(LN3, abs=1e-6)
    assert confusion_loss(logits, torch.ones(1, 3, dtype=torch.bool)).item() == 0.0
    # unlike the cross-entropy a reversal maximises, it has a floor (ln K, a uniform prediction)
    # and a confidently wrong decoder is penalised as much as a confidently right one
    torch.manual_seed(0)
    for _ in range(20):
        assert confusion_loss(torch.randn(2, 5, 3) * 5).item() >= LN3 - 1e-6
    assert confusion_loss(logits[:, 2:]).item() > 16.0


def test_gradient_reversal_flips_the_encoder_gradient():
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 4, requires_grad=True)
    dec = nn.Linear(4, 3)
    targets = torch.randint(0, 3, (2, 5))
    adversary_loss(dec(feats), targets).loss.backward()
    plain = feats.grad.clone()
    feats.grad = None
    lam = dann_lambda(0.3)
    adversary_loss(dec(_GRL.apply(feats, lam)), targets).loss.backward()
    assert torch.allclose(feats.grad, -lam * plain, atol=1e-6)


def test_reconstruction_loss_by_hand():
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target = torch.zeros(1, 2, 2)
    pad = torch.tensor([[False, True]])
    assert reconstruction_loss(pred, target, pad, "l1").item() == pytest.approx(1.5)
    assert reconstruction_loss(pred, target, pad, "l2").item() == pytest.approx(2.5)
    assert reconstruction_loss(pred, target).item() == pytest.approx(2.5)
    with pytest.raises(ValueError):
        reconstruction_loss(pred, target, kind="huber")


def test_cosine_schedule():
    s = CosineSchedule(1.0, 0.0, 10)
    assert s[0] == 1.0 and s[5] == pytest.approx(0.5) and s[10] == 0.0 and s[100] == 0.0
    assert len(s) == 10
    w = CosineSchedule(0.2, 0.2, 20, warmup_steps=10, start_warmup_value=0.05)  # RDINO's reg weight
    assert w[0] == pytest.approx(0.05) and w[5] == pytest.approx(0.125) and w[10] == pytest.approx(0.2)
    assert w[19] == pytest.approx(0.2)
    f = CosineSchedule(1.0, 0.0, 10, freeze_steps=2, warmup_steps=3)
    assert f[0] == f[1] == 0.0 and f[2] == 0.0 and f[5] == 1.0
    m = CosineSchedule(0.996, 1.0, 100)  # teacher momentum
    assert m[0] == pytest.approx(0.996) and all(m[i] <= m[i + 1] for i in range(99))
    with pytest.raises(ValueError):
        CosineSchedule(1.0, 0.0, 5, warmup_steps=6)
