import math

import pytest
import torch

from jooci.losses import multi_cluster_mpl

LN3 = math.log(3.0)


def _tiny():
    # label set 1: K = 2; frame 0 masked (CE log 2), frame 1 unmasked, frame 2 masked (CE log 4/3)
    lg1 = torch.tensor([[[0.0, 0.0], [5.0, -5.0], [LN3, 0.0]]], requires_grad=True)
    tg1 = torch.tensor([[1, 0, 0]])
    # label set 2: K = 3; frame 0 masked (CE log 3), frame 2 masked but unlabelled (-100)
    lg2 = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [9.0, 0.0, 0.0]]], requires_grad=True)
    tg2 = torch.tensor([[2, 1, -100]])
    mask = torch.tensor([[True, False, True]])
    return lg1, tg1, lg2, tg2, mask


def test_hand_computed_value_and_accuracy():
    lg1, tg1, lg2, tg2, mask = _tiny()
    out = multi_cluster_mpl([lg1, lg2], [tg1, tg2], mask)
    l1 = (math.log(2) + math.log(4 / 3)) / 2
    l2 = math.log(3)
    assert out.losses[0].item() == pytest.approx(l1, abs=1e-6)
    assert out.losses[1].item() == pytest.approx(l2, abs=1e-6)
    assert out.loss.item() == pytest.approx(l1 + l2, abs=1e-6)
    assert out.accuracies == [0.5, 0.0]  # argmax ties go to class 0
    assert out.num_frames == [2, 1]
    weighted = multi_cluster_mpl([lg1, lg2], [tg1, tg2], mask, weights=[2.0, 0.5])
    assert weighted.loss.item() == pytest.approx(2 * l1 + 0.5 * l2, abs=1e-6)


def test_gradient_only_on_masked_labelled_frames():
    lg1, tg1, lg2, tg2, mask = _tiny()
    multi_cluster_mpl([lg1, lg2], [tg1, tg2], mask).loss.backward()
    assert lg1.grad[0, 1].abs().sum() == 0  # unmasked
    assert lg2.grad[0, 1].abs().sum() == 0 and lg2.grad[0, 2].abs().sum() == 0  # unmasked / unlabelled
    assert lg1.grad[0, 0].abs().sum() > 0


def test_no_masked_frame_gives_zero_with_graph():
    lg1, tg1, _, _, _ = _tiny()
    out = multi_cluster_mpl([lg1], [tg1], torch.zeros(1, 3, dtype=torch.bool))
    assert out.loss.item() == 0.0 and out.loss.requires_grad and out.num_frames == [0]


def test_shape_and_label_errors():
    lg1, tg1, lg2, tg2, mask = _tiny()
    with pytest.raises(ValueError):
        multi_cluster_mpl([lg1], [tg1, tg2], mask)
    with pytest.raises(ValueError):
        multi_cluster_mpl([lg1], [tg1[:, :2]], mask)
    with pytest.raises(ValueError, match="number of classes"):
        multi_cluster_mpl([lg1], [torch.tensor([[5, 0, 0]])], mask)
