"""Layer-wise analysis: one linear probe per hidden state, for a Content task (PR) and an Other
task (SID), so a plot shows where in its depth a model keeps each kind of information.

Method: the same head class as the weighted-sum task (PR: frame-level linear + CTC; SID: mean
pooling + linear), but on a single state. All L probes train together in one loop with their
own parameters (a batched einsum; Adam is per-parameter and the summed loss separates, so this
equals L independent runs at 1/L of the data passes); each layer keeps its own best-dev epoch
and is scored on test there. One learning rate: the one the weighted-sum task chose.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jooci.superb.metrics import accuracy, error_rate
from jooci.superb.tasks.common import TaskSettings, greedy_ctc
from jooci.superb.tasks.pr import PRTask
from jooci.superb.tasks.sid import PooledClassifierTask


class LayerwiseLinear(nn.Module):
    """L independent Linear(D, K): (L, ..., D) -> (L, ..., K)."""

    def __init__(self, num_layers: int, dim: int, out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(dim)  # nn.Linear's default init
        self.weight = nn.Parameter(torch.empty(num_layers, dim, out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_layers, out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        y = torch.bmm(x.float().reshape(shape[0], -1, shape[-1]), self.weight) + self.bias[:, None]
        return y.reshape(*shape[:-1], -1)


def _train(probe: LayerwiseLinear, batches: Callable[[torch.Generator], Any], loss: Callable[[Any], Tensor],
           dev: Callable[[], np.ndarray], test: Callable[[], np.ndarray], higher: bool, settings: TaskSettings,
           lr: float, seed: int) -> tuple[list[float], list[float], list[int]]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    L = probe.weight.shape[0]
    best = np.full(L, -np.inf if higher else np.inf)
    best_epoch = [0] * L
    keep_w, keep_b = probe.weight.detach().clone(), probe.bias.detach().clone()
    for epoch in range(1, settings.epochs + 1):
        for batch in batches(gen):
            value = loss(batch)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        if epoch % settings.eval_every == 0 or epoch == settings.epochs:
            with torch.no_grad():
                d = dev()
            improved = d > best if higher else d < best
            for layer in np.nonzero(improved)[0]:
                best[layer], best_epoch[layer] = d[layer], epoch
                keep_w[layer], keep_b[layer] = probe.weight.detach()[layer], probe.bias.detach()[layer]
    with torch.no_grad():
        probe.weight.copy_(keep_w)
        probe.bias.copy_(keep_b)
        t = test()
    return [float(v) for v in t], [float(v) for v in best], best_epoch


def probe_pr(task: PRTask, num_layers: int, settings: TaskSettings, lr: float, seed: int) -> dict[str, Any]:
    """PER (%) of a linear CTC probe on each hidden state (``task`` built on all states)."""
    torch.manual_seed(seed)
    probe = LayerwiseLinear(num_layers, task.dim, len(task.vocab) + 1)

    def logp(x: Tensor) -> Tensor:
        return probe(x).log_softmax(-1)  # (L, B, T, V)

    def loss(batch: Any) -> Tensor:
        lp = logp(batch.x)
        L, B, T, V = lp.shape
        tg = [task.targets["train"][i] for i in batch.rows]
        tl = torch.tensor([len(t) for t in tg])
        per = F.ctc_loss(lp.reshape(L * B, T, V).transpose(0, 1), torch.cat(tg).repeat(L), batch.lengths.repeat(L),
                         tl.repeat(L), blank=0, reduction="none", zero_infinity=True)
        return (per / tl.repeat(L).clamp_min(1)).view(L, B).mean(1).sum()

    def score(split: str) -> np.ndarray:
        hyps = [[[] for _ in task.refs[split]] for _ in range(num_layers)]
        for batch in task.batches[split]:
            lp = logp(batch.x)
            for layer in range(num_layers):
                for i, ids in zip(batch.rows, greedy_ctc(lp[layer], batch.lengths)):
                    hyps[layer][i] = task.units(task.detokenize(ids))
        return np.array([error_rate(task.refs[split], h) for h in hyps])

    test, dev, epochs = _train(probe, lambda g: task.train_batches(g), loss, lambda: score("dev"),
                               lambda: score("test"), False, settings, lr, seed)
    return {"metric": "per", "values": test, "dev_values": dev, "best_epochs": epochs, "lr": lr,
            "epochs": settings.epochs}


def probe_classifier(task: PooledClassifierTask, num_layers: int, settings: TaskSettings, lr: float,
                     seed: int) -> dict[str, Any]:
    """Accuracy (%) of a mean-pooling linear probe on each hidden state (SID, or ER)."""
    torch.manual_seed(seed)
    probe = LayerwiseLinear(num_layers, task.dim, len(task.classes))
    y = task.y["train"]

    def loss(rows: Tensor) -> Tensor:
        logits = probe(task.x["train"][:, rows])  # (L, B, K)
        L, B, K = logits.shape
        return F.cross_entropy(logits.reshape(L * B, K), y[rows].repeat(L), reduction="none").view(L, B).mean(1).sum()

    def score(split: str) -> np.ndarray:
        pred = probe(task.x[split]).argmax(-1)  # (L, N)
        return np.array([accuracy(task.y[split].numpy(), p.numpy()) for p in pred])

    test, dev, epochs = _train(probe, task.train_batches, loss, lambda: score("dev"), lambda: score("test"), True,
                               settings, lr, seed)
    return {"metric": "accuracy", "values": test, "dev_values": dev, "best_epochs": epochs, "lr": lr,
            "epochs": settings.epochs}
