"""What every task shares: cached features as tensors, batching, and the dev-selected training run.

A task (``pr.py`` ... ``er.py``) owns its head, its loss and its metric; :func:`run_task` owns the
loop: for each learning rate of the sweep, train the head (Featurizer + task head) for a fixed
number of epochs, score dev every ``eval_every`` epochs and keep the best dev state; the learning
rate with the best dev value wins, and only that head is scored on test. The upstream never
appears: heads read cached features, so it cannot be updated (SUPERB's frozen protocol).

Heads train on the CPU, or on a GPU when :func:`run_task` is given one: the head is built on the
CPU as always (the same seeded initial weights), then moved into an :class:`OnDevice`, which
runs it on the device while the task keeps its features, labels and metric on the CPU: its
calls take CPU tensors in and give CPU tensors back (autograd follows the copies both ways).
On the CPU nothing is wrapped: results are those of a run without a device.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from jooci.data.manifest import Utterance
from jooci.superb.cache import FeatureBank
from jooci.superb.featurizer import Featurizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSettings:
    """How one task trains: epochs, learning rates to try (best dev wins), batch size in frames
    (padded, all layers share it), dev scoring cadence, and the head's width where a task's head
    has one to choose (ASR: its projection and BiLSTM; None: the task's own default)."""

    epochs: int
    lrs: tuple[float, ...]
    batch_frames: int = 8000
    eval_every: int = 1
    width: int | None = None


@dataclass
class TaskResult:
    """One task's outcome; ``value``/``dev_value`` in the metric's unit (see :mod:`jooci.superb.metrics`)."""

    task: str
    metric: str
    value: float
    dev_value: float
    lr: float
    lr_sweep: dict[str, float]
    best_epoch: int
    epochs: int
    layer_weights: list[float]
    layer_names: list[str]
    num_train: int
    num_dev: int
    num_test: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


class FeatureView:
    """Cached features of a task's utterances as tensors (the selected layers), normalised as they
    are read if asked. Nothing is kept: every call reads the cache (:meth:`FeatureBank.read`)."""

    def __init__(self, bank: FeatureBank, featurizer_normalize: bool, layers: Sequence[int]):
        self.bank, self.layers = bank, list(layers)
        self._prep = Featurizer(1, normalize=featurizer_normalize).prepare

    def num_frames(self, utt: Utterance) -> int:
        return self.bank.num_frames(utt)

    def read(self, utt: Utterance, start: int = 0, stop: int | None = None) -> Tensor:
        """(L, t, D) float32 frames ``start:stop`` of ``utt`` (the normalisation is per frame, so a
        crop read alone equals the same crop of the whole utterance)."""
        return self._prep(torch.from_numpy(self.bank.read(utt, start, stop, self.layers)))

    def pooled(self, utts: Sequence[Utterance]) -> Tensor:
        """(N, L, D) per-layer means over each utterance's frames (mean pooling commutes with the
        weighted sum, so utterance-level heads train on these, not on frames), one utterance read
        at a time."""
        return torch.stack([self.read(u).mean(dim=1) for u in utts])


@dataclass
class FrameBatch:
    """Padded frames (L, B, T, D) float16 (the cache's precision), lengths (B,), row indices into the split."""

    x: Tensor
    lengths: Tensor
    rows: list[int]


def plan_batches(lengths: Sequence[int], batch_frames: int) -> list[list[int]]:
    """Rows grouped by length (sorted, shortest first) into batches of at most ``batch_frames``
    padded frames each (at least one utterance per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        if cur and max(longest, lengths[i]) * (len(cur) + 1) > batch_frames:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, lengths[i])
    if cur:
        batches.append(cur)
    return batches


def pad_batch(frames: Sequence[Tensor], rows: list[int]) -> FrameBatch:
    """(L, T_i, D) tensors -> one :class:`FrameBatch` (float16, zero padding)."""
    t = max(f.shape[1] for f in frames)
    L, _, D = frames[0].shape
    x = torch.zeros(L, len(frames), t, D, dtype=torch.float16)  # half the RAM; summed in float32
    for b, f in enumerate(frames):
        x[:, b, : f.shape[1]] = f
    return FrameBatch(x, torch.tensor([f.shape[1] for f in frames]), list(rows))


class FrameBatches(Sequence[FrameBatch]):
    """A split's padded batches, planned from the cache's frame counts and read from the cache
    each time one is asked for: memory holds the batch in use, not the split. (Each epoch reads
    the split again; the OS page cache serves what fits in RAM.)"""

    def __init__(self, view: FeatureView, utts: Sequence[Utterance], batch_frames: int):
        self.view, self.utts = view, list(utts)
        self.lengths = [view.num_frames(u) for u in self.utts]
        self.plan = plan_batches(self.lengths, batch_frames)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> FrameBatch:  # type: ignore[override]
        rows = self.plan[i]
        return pad_batch([self.view.read(self.utts[r]) for r in rows], rows)

    def __iter__(self) -> Iterator[FrameBatch]:
        return (self[i] for i in range(len(self)))


def shuffled(items: Sequence[Any], gen: torch.Generator) -> Iterator[Any]:
    for i in torch.randperm(len(items), generator=gen).tolist():
        yield items[i]


def padding_mask(lengths: Tensor, t: int) -> Tensor:
    """(B, T) True at padding (on ``lengths``' device)."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


def _moved(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (nested in tuples, lists, dicts, :class:`FrameBatch`) on ``device``."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, FrameBatch):
        return FrameBatch(value.x.to(device), value.lengths.to(device), value.rows)
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    return value


def needs_wrapper(device: str | torch.device) -> bool:
    """Whether a head trained on ``device`` runs in an :class:`OnDevice`: any device but the CPU."""
    return torch.device(device).type != "cpu"


class OnDevice(nn.Module):
    """A head whose parameters and arithmetic live on ``device``, called with and returning CPU
    tensors: its forward and its methods (ASV's ``am_softmax_loss``) copy their tensor arguments
    to the device and their results back. Submodules (``featurizer``) and other attributes are
    the head's own."""

    def __init__(self, head: nn.Module, device: str | torch.device):
        super().__init__()
        self.head = head.to(device)
        self.target = torch.device(device)

    def _call(self, fn: Any, args: tuple, kwargs: dict) -> Any:
        cpu = torch.device("cpu")
        return _moved(fn(*_moved(args, self.target), **_moved(kwargs, self.target)), cpu)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self.head, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # this wrapper's own parameters / submodules ("head")
        except AttributeError:
            pass
        attr = getattr(self.head, name)
        if isinstance(attr, nn.Module) or not callable(attr):
            return attr
        return lambda *a, **k: self._call(attr, a, k)


class Task(Protocol):
    """What :func:`run_task` needs from a task."""

    name: str
    metric: str
    higher_is_better: bool

    def build_head(self) -> nn.Module: ...  # has a ``featurizer`` attribute

    def train_batches(self, gen: torch.Generator) -> Iterator[Any]: ...

    def loss(self, head: nn.Module, batch: Any) -> Tensor: ...

    def evaluate(self, head: nn.Module, split: str) -> tuple[float, dict[str, Any]]: ...


def _better(a: float, b: float | None, higher: bool) -> bool:
    return b is None or (a > b if higher else a < b)


def train_head(task: Task, settings: TaskSettings, lr: float, seed: int,
               writer: Any = None, device: str | torch.device = "cpu") -> tuple[nn.Module, float, int]:
    """Train one head at one learning rate; returns it at its best dev epoch, that dev value and epoch.

    ``device``: where the head trains (module docstring); its batches, crops and initial weights
    come from the CPU generators either way."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    head = task.build_head()
    if needs_wrapper(device):
        head = OnDevice(head, device)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    best, best_state, best_epoch, step = None, None, 0, 0
    for epoch in range(1, settings.epochs + 1):
        head.train()
        for batch in task.train_batches(gen):
            loss = task.loss(head, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), 5.0)  # CTC's first steps can spike
            opt.step()
            step += 1
            if writer is not None:
                writer.add_scalar(f"{task.name}/lr{lr:g}/loss", loss.item(), step)
        if epoch % settings.eval_every == 0 or epoch == settings.epochs:
            head.eval()
            with torch.no_grad():
                dev, _ = task.evaluate(head, "dev")
            if writer is not None:
                writer.add_scalar(f"{task.name}/lr{lr:g}/dev_{task.metric}", dev, epoch)
            if not math.isfinite(dev):
                continue
            if _better(dev, best, task.higher_is_better):
                best, best_epoch = dev, epoch
                best_state = copy.deepcopy(head.state_dict())
    if best_state is None:  # every dev value non-finite: keep the last state, report it
        return head.eval(), float("nan"), settings.epochs
    head.load_state_dict(best_state)
    return head.eval(), float(best), best_epoch


def run_task(task: Task, settings: TaskSettings, seed: int, layer_names: list[str],
             counts: tuple[int, int, int], writer: Any = None,
             device: str | torch.device = "cpu") -> tuple[TaskResult, nn.Module]:
    """The LR sweep with dev-set selection, then the test score of the selected head (trained on
    ``device``: :func:`train_head`)."""
    t0 = time.perf_counter()
    sweep: dict[str, float] = {}
    chosen: tuple[nn.Module, float, int, float] | None = None
    for lr in settings.lrs:
        head, dev, epoch = train_head(task, settings, lr, seed, writer, device)
        sweep[f"{lr:g}"] = dev
        log.info("%s: lr %g -> dev %s %.3f (epoch %d)", task.name, lr, task.metric, dev, epoch)
        if chosen is None or (math.isfinite(dev) and (not math.isfinite(chosen[1]) or
                                                       _better(dev, chosen[1], task.higher_is_better))):
            chosen = (head, dev, epoch, lr)
    assert chosen is not None, "settings.lrs is empty"
    head, dev, epoch, lr = chosen
    with torch.no_grad():
        value, extra = task.evaluate(head, "test")
    result = TaskResult(task.name, task.metric, float(value), float(dev), lr, sweep, epoch, settings.epochs,
                        head.featurizer.layer_weights(), list(layer_names), *counts,
                        seconds=round(time.perf_counter() - t0, 2), extra=extra)
    return result, head


def greedy_ctc(log_probs: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path CTC decoding: argmax per frame, merge repeats, drop blanks. (B, T, V) -> ids."""
    best = log_probs.argmax(-1).cpu().numpy()
    out = []
    for b, n in enumerate(lengths.tolist()):
        seq = best[b, :n]
        keep = np.r_[True, seq[1:] != seq[:-1]] & (seq != blank)
        out.append(seq[keep].tolist())
    return out
