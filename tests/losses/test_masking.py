import math

import pytest
import torch

from jooci.losses import compute_span_mask


def _expected_fraction(sz: int, prob: float, span: int) -> float:
    """Exact expected masked fraction for fairseq span masking (starts without replacement)."""
    n_cand = sz - span
    total = 0.0
    base = prob * sz / span
    for num, p_num in ((math.floor(base), 1 - (base - math.floor(base))), (math.floor(base) + 1, base - math.floor(base))):
        frac = 0.0
        for t in range(sz):
            covering = sum(1 for s in range(max(0, t - span + 1), t + 1) if s < n_cand)
            frac += 1 - math.comb(n_cand - covering, num) / math.comb(n_cand, num)
        total += p_num * frac / sz
    return total


def test_fraction_masked_matches_expectation():
    g = torch.Generator().manual_seed(0)
    m = compute_span_mask((256, 300), None, 0.8, 10, generator=g)
    expected = _expected_fraction(300, 0.8, 10)
    assert 0.45 < expected < 0.6  # the well-known "about half" for HuBERT-Base settings
    assert abs(m.float().mean().item() - expected) < 0.01


def test_no_mask_in_padding_and_deterministic():
    lengths = torch.tensor([300, 120, 37, 11, 1, 0])
    pad = torch.arange(300)[None, :] >= lengths[:, None]
    m1 = compute_span_mask((6, 300), pad, 0.8, 10, generator=torch.Generator().manual_seed(3))
    m2 = compute_span_mask((6, 300), pad, 0.8, 10, generator=torch.Generator().manual_seed(3))
    m3 = compute_span_mask((6, 300), pad, 0.8, 10, generator=torch.Generator().manual_seed(4))
    assert m1.dtype == torch.bool and m1.shape == (6, 300)
    assert not (m1 & pad).any()
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)
    assert m1[5].sum() == 0  # an all-padding row gets nothing
    assert m1[4].sum() <= 1  # one valid frame: never more than it (fairseq may leave it unmasked)
    for i, n in enumerate(lengths.tolist()[:4]):
        assert m1[i, :n].any()


def test_at_least_min_masks_spans():
    g = torch.Generator().manual_seed(1)
    m = compute_span_mask((200, 1000), None, 0.0, 10, generator=g, min_masks=2)
    counts = m.sum(1)
    assert (counts >= 10).all() and (counts <= 20).all()
    assert counts.float().mean() > 19.0  # two spans, rarely overlapping in 1000 frames
    runs = (m[:, 1:] & ~m[:, :-1]).sum(1) + m[:, 0]
    assert (runs[counts == 20] == 2).all()


def test_short_rows_and_same_masks():
    lengths = torch.tensor([200, 150, 60])
    pad = torch.arange(200)[None, :] >= lengths[:, None]
    m = compute_span_mask((3, 200), pad, 0.8, 10, generator=torch.Generator().manual_seed(0),
                          require_same_masks=True)
    assert len(set(m.sum(1).tolist())) == 1
    assert not (m & pad).any()


def test_bad_arguments():
    g = torch.Generator()
    with pytest.raises(ValueError):
        compute_span_mask((2, 10), None, 1.5, 10, generator=g)
    with pytest.raises(ValueError):
        compute_span_mask((2, 10), torch.zeros(2, 9, dtype=torch.bool), 0.5, 10, generator=g)
