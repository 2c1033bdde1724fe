import copy
import math

import pytest
import torch
from torch import nn

from jooci.losses import (
    DINOCenter, MultiCropConfig, covariance_loss, dino_loss, embedding_distillation, ema_update_, multi_crop, rdino_regulariser,
    variance_loss,
)

LN3 = math.log(3.0)


def _h(q, logp):  # cross-entropy of two small lists
    return -sum(a * b for a, b in zip(q, logp))


def test_dino_loss_by_hand():
    # teacher: view 0 -> q = (3/4, 1/4), view 1 -> q = (1/2, 1/2) (temperature 0.5)
    teacher = [torch.tensor([[LN3 * 0.5, 0.0]]), torch.tensor([[0.0, 0.0]])]
    # student (temperature 0.1): views 0 and 1 are the teacher's global crops, view 2 a local one
    student = [torch.tensor([[0.0, 0.0]]), torch.tensor([[LN3 * 0.1, 0.0]]), torch.tensor([[0.0, LN3 * 0.1]])]
    for s in student:
        s.requires_grad_(True)
    loss = dino_loss(student, teacher, torch.zeros(2), student_temp=0.1, teacher_temp=0.5)
    lp0 = [math.log(0.5)] * 2
    lp1 = [math.log(0.75), math.log(0.25)]
    lp2 = [math.log(0.25), math.log(0.75)]
    q0, q1 = [0.75, 0.25], [0.5, 0.5]
    expected = (_h(q0, lp1) + _h(q0, lp2) + _h(q1, lp0) + _h(q1, lp2)) / 4  # (i, v) pairs with v != i
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert all(s.grad is not None for s in student)


def test_dino_loss_centre_and_no_teacher_gradient():
    t = torch.tensor([[LN3 * 0.04, 0.0]], requires_grad=True)
    s = [torch.tensor([[0.0, 0.0]], requires_grad=True), torch.tensor([[0.0, 0.0]], requires_grad=True)]
    # centring by the teacher's own value makes q uniform: CE against a uniform student = log 2
    loss = dino_loss(s, [t], torch.tensor([[LN3 * 0.04, 0.0]]))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    loss.backward()
    assert t.grad is None
    with pytest.raises(ValueError):
        dino_loss(s[:1], [t], torch.zeros(2))


def test_embedding_distillation_by_hand():
    t = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [1.0, 1.0]])]
    # same direction, orthogonal, opposite, 45 degrees: distances 0, 1, 2, 1 - 1/sqrt(2)
    s = [torch.tensor([[5.0, 0.0], [1.0, 0.0]], requires_grad=True),
         torch.tensor([[-1.0, 0.0], [0.0, 1.0]], requires_grad=True)]
    loss = embedding_distillation(s, t)
    expected = ((0 + 1) / 2 + (2 + 1 - 1 / math.sqrt(2)) / 2) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert all(x.grad is not None for x in s)
    assert embedding_distillation([x.detach() for x in t], t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        embedding_distillation(s[:1], t)


def test_centre_update_and_reduction():
    c = DINOCenter(2, momentum=0.9)
    c.update([torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[5.0, 6.0]])])
    assert torch.allclose(c.center, torch.tensor([[0.3, 0.4]]))
    c.update(torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(c.center, torch.tensor([[0.57, 0.76]]))

    # two ranks: this one has 3 rows, the other 1 row ([7, 8]); the global mean is (4, 5)
    other = torch.tensor([7.0, 8.0, 1.0])  # its (sum, count)
    c2 = DINOCenter(2, momentum=0.5)
    c2.update([torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])], reduce=lambda t: t + other)
    assert torch.allclose(c2.center, torch.tensor([[2.0, 2.5]]))
    c3 = DINOCenter(2)
    c3.load_state_dict(c2.state_dict())
    assert torch.equal(c3.center, c2.center) and c3.momentum == 0.5


def test_variance_and_covariance_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    # dim 0: var 2 -> std 1.41 > 1 -> 0; dim 1: std sqrt(1e-4) = 0.01 -> 0.99
    assert variance_loss(x).item() == pytest.approx(0.495, abs=1e-6)
    y = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]])  # cov = [[1, 1], [1, 1]]
    assert covariance_loss(y).item() == pytest.approx(1.0)
    assert covariance_loss(y, normalizer=4).item() == pytest.approx(0.5)
    reg = rdino_regulariser([y, y], std_coeff=10, cov_coeff=1)  # two global views averaged
    std_y = 1 - math.sqrt(1 + 1e-4)  # negative -> hinge 0
    assert reg.std.item() == pytest.approx(max(std_y, 0.0))
    assert reg.loss.item() == pytest.approx(10 * reg.std.item() + 1.0)
    with pytest.raises(ValueError):
        variance_loss(torch.zeros(1, 3))


def _rdino_reference(s_views, t_views, out_dim, std_coeff=10.0, cov_coeff=1.0):
    """3D-Speaker RegLoss, written out from its definition (paper dossier 2.2): views averaged per
    utterance, centred; std = hinge_s / 2 + hinge_t / 2; cov = offdiag(C_s)^2 / out_dim + same for t."""
    terms_std, terms_cov = [], []
    for views in (s_views, t_views):
        x = torch.stack(views).mean(0)
        x = x - x.mean(0)
        n, d = x.shape
        std = torch.sqrt(x.var(0) + 1e-4)
        terms_std.append(torch.clamp(1 - std, min=0).mean() / 2)
        c = x.T @ x / (n - 1)
        terms_cov.append(sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / out_dim)
    return std_coeff * sum(terms_std) + cov_coeff * sum(terms_cov)


def test_rdino_regulariser_is_scaled_as_3dspeaker():
    g = torch.Generator().manual_seed(0)
    s = [(torch.randn(6, 5, generator=g) * 0.3).requires_grad_() for _ in range(2)]
    t = [torch.randn(6, 5, generator=g) * 0.5 for _ in range(2)]
    reg = rdino_regulariser(s, t, cov_normalizer=40)
    assert reg.loss.item() == pytest.approx(_rdino_reference(s, t, 40).item(), rel=1e-5)
    # only the student carries gradient; its variance weight is half what it has alone
    alone = rdino_regulariser(s, std_coeff=10, cov_coeff=0)
    paired = rdino_regulariser(s, [v.detach() for v in t], std_coeff=10, cov_coeff=0)
    (g_alone,) = torch.autograd.grad(alone.loss, s[0])
    (g_paired,) = torch.autograd.grad(paired.loss, s[0])
    assert torch.allclose(g_paired, g_alone / 2, atol=1e-7) and g_alone.abs().sum() > 0
    # the covariance term divides by the normaliser (RDINO: the head's out_dim, not D)
    by_d = rdino_regulariser(s, t, std_coeff=0).loss
    by_out = rdino_regulariser(s, t, std_coeff=0, cov_normalizer=40).loss
    assert by_out.item() == pytest.approx(by_d.item() * 5 / 40, rel=1e-5)
    # one utterance (after gathering): no spread, zero with a graph
    one = rdino_regulariser([v[:1] for v in s], [v[:1] for v in t])
    assert one.loss.item() == 0.0 and one.loss.requires_grad


def test_rdino_regulariser_gathers_before_its_statistics():
    x = torch.randn(4, 3)
    seen = []
    reg = rdino_regulariser(x[:2], gather=lambda t: seen.append(t.shape[0]) or torch.cat([t, x[2:]]))
    assert seen == [2]
    assert reg.loss.item() == pytest.approx(rdino_regulariser(x).loss.item(), rel=1e-6)


def test_ema_update():
    student = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        nn.init.constant_(p, 1.0)
    for p in student.parameters():
        nn.init.constant_(p, 3.0)
    student[1].running_mean.fill_(7.0)
    ema_update_(teacher, student, 0.9)
    for p in teacher.parameters():
        assert torch.allclose(p, torch.full_like(p, 1.2))
    assert torch.equal(teacher[1].running_mean, torch.zeros(2))  # buffers are the teacher's own
    ema_update_(teacher, student, 1.0)
    assert torch.allclose(next(teacher.parameters()), torch.full((2, 3), 1.2))
    with pytest.raises(ValueError):
        ema_update_(nn.Linear(3, 2), nn.Linear(3, 3), 0.9)


def test_multi_crop_views():
    B, S = 3, 64000
    wav = torch.arange(S, dtype=torch.float32).repeat(B, 1)  # sample value = its index
    lengths = torch.tensor([64000, 40000, 12000])
    cfg = MultiCropConfig(n_global=2, global_seconds=(2.0, 3.0), n_local=4, local_seconds=(1.0, 1.0))
    views = multi_crop(wav, lengths, cfg, generator=torch.Generator().manual_seed(0))
    again = multi_crop(wav, lengths, cfg, generator=torch.Generator().manual_seed(0))
    assert [v.is_global for v in views] == [True, True, False, False, False, False]
    for v, w in zip(views, again):
        assert torch.equal(v.waveforms, w.waveforms) and torch.equal(v.lengths, w.lengths)
    for v in views:
        lo, hi = (32000, 48000) if v.is_global else (16000, 16000)
        assert v.waveforms.shape[0] == B and v.waveforms.shape[1] == int(v.lengths.max())
        for b in range(B):
            n = int(v.lengths[b])
            assert (lo <= n <= hi and n <= int(lengths[b])) or n == int(lengths[b]) < lo
            row = v.waveforms[b, :n]
            start = int(row[0])
            # a contiguous slice of the utterance, inside its valid samples
            assert torch.equal(row, torch.arange(start, start + n, dtype=torch.float32))
            assert start + n <= int(lengths[b])
            assert (v.waveforms[b, n:] == 0).all()
    assert int(views[0].lengths[2]) == 12000  # shorter than a global crop: taken whole
    assert int(views[2].lengths[0]) == 16000
