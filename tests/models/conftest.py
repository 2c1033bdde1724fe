"""Shared helpers for the model tests: small padded batches built from items of different lengths."""

from __future__ import annotations

import pytest
import torch


def pad_batch(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D (S,) or 2-D (T, F) items into a batch; returns (batch, lengths)."""
    lengths = torch.tensor([x.shape[0] for x in items])
    out = torch.zeros((len(items), int(lengths.max())) + tuple(items[0].shape[1:]))
    for i, x in enumerate(items):
        out[i, : x.shape[0]] = x
    return out, lengths


@pytest.fixture
def pad():
    """The :func:`pad_batch` helper, as a fixture (test folders here are not packages)."""
    return pad_batch


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded: these models are tiny, and on a busy 2-core machine thread
    hand-offs cost more than they gain."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
