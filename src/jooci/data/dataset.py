"""Datasets, collation and seconds-per-batch sampling for pretraining and evaluation.

Three pieces, used together by :func:`make_loader`:

- :class:`AudioDataset` turns :class:`~jooci.data.manifest.Utterance` records into 16 kHz float32
  waveforms (through :func:`jooci.audio.load_audio`), crops long ones reproducibly and crops frame
  labels in step with the audio.
- :func:`collate` zero-pads a list of examples into a :class:`Batch` with absolute lengths.
- :class:`SecondsBatchSampler` groups items by total padded seconds (fairseq's ``max_tokens``,
  torchaudio's ``seconds_per_batch``), splits batches evenly over DDP ranks and can resume
  mid-epoch from a ``state_dict`` of plain ints.

Decisions (see each class for details):

- **Crop offsets are multiples of the label hop** (``16000 / label_rate`` samples: 320 at 50 Hz,
  160 at 100 Hz; the least common multiple when several label sets have different rates). A crop
  that starts at sample ``s = k * hop`` keeps labels from frame ``k`` on, so frame ``f`` of the crop
  covers samples ``[s + f*320, s + f*320 + 400)`` of the utterance exactly as frame ``k + f`` of
  the whole utterance did: no rounding, no drift. Without labels any offset is allowed.
- **Crops are a pure function of (seed, epoch, index)** so a resumed run sees the same audio.
- **An item longer than the batch budget** (only possible without ``max_samples``) gets a batch
  of its own; it is counted and logged at construction rather than refused, because evaluation
  sets are batched uncropped and must not lose their longest utterances.
- **DDP**: every rank builds the same global batch list and takes every ``num_replicas``-th batch;
  the list is padded by repeating batches from its start (or, with ``drop_last``, cut) so that all
  ranks run the same number of steps — an unequal count makes DDP hang in the last all-reduce.
- **Bad files**: with ``max_bad=0`` (default) the :class:`~jooci.audio.AudioError` naming the file
  and the utterance propagates. With ``max_bad=N`` up to N distinct bad files are logged, counted
  and returned as ``None`` (dropped by :func:`collate`, counted in ``Batch.num_skipped``); the
  next one raises. The count is per process (each DataLoader worker keeps its own).
- **A DataLoader worker that dies** (SIGKILL from the out-of-memory killer, a crash inside a
  decoder) takes its Python state with it, so each worker notes the item it is reading in a small
  shared-memory table (:class:`ReadTracker`: pid, item, reading or not). torch's "DataLoader
  worker (pid N) ..." error is turned into a :class:`WorkerDiedError` naming the file that worker
  was reading (:func:`explain_worker_death`; the loader of :func:`make_loader` does it for errors
  seen while fetching a batch, and the CLI for the same error raised anywhere else).
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from jooci.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, load_audio, resampled_length
from jooci.data.manifest import Utterance
from jooci.padding import pad_waveforms

log = logging.getLogger(__name__)

PRETRAIN_MIN_SAMPLES = 32000
"""Shortest utterance kept for pretraining: 2 s (fairseq HuBERT ``min_sample_size``)."""

PRETRAIN_MAX_SAMPLES = 250000
"""Pretraining crop length: 15.625 s (fairseq HuBERT ``max_sample_size``)."""

LABEL_PAD = -100
"""Padding value of label tensors (``torch.nn.functional.cross_entropy``'s ``ignore_index``)."""

DEFAULT_LABEL_NAME = "label"
"""Name given to a single label set passed as a plain list."""

LABEL_TOLERANCE_S = 0.1
"""Largest accepted ``|audio seconds - n_labels / label_rate|`` (fairseq warns above this)."""

_SHOWN = 5  # ids spelled out in a log line or error before summarising
_WARNED: set[str] = set()  # messages already logged by this process


def _warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it, and only on the main
    rank of a ``torchrun`` job (``RANK`` unset or 0): every phase of a run builds its dataset
    again, and every rank builds its own. Repeats go to DEBUG."""
    first = message not in _WARNED
    _WARNED.add(message)
    main = os.environ.get("RANK", "0") == "0"
    log.log(logging.WARNING if first and main else logging.DEBUG, "%s", message)


# ---------------------------------------------------------------------------------------------
# Dataset


@dataclass
class Example:
    """One dataset item.

    Attributes:
        id: the utterance id.
        waveform: ``(S,)`` float32 at 16 kHz, the (possibly cropped) audio.
        offset: where the crop starts in the whole utterance, in 16 kHz samples.
        labels: name -> ``(T,)`` int64 frame labels cropped in step with the audio.
        speaker, style: copied from the utterance.
    """

    id: str
    waveform: torch.Tensor
    offset: int = 0
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    speaker: str | None = None
    style: str | None = None


class AudioDataset(Dataset):
    """Utterances as 16 kHz float32 waveforms, cropped reproducibly, with optional frame labels.

    Args:
        utterances: the corpus records (``num_samples`` at each record's ``sample_rate``).
        min_samples: drop utterances shorter than this many 16 kHz samples (at least
            :data:`~jooci.audio.MIN_SAMPLES`, one CNN frame). Drops are counted in
            ``num_too_short``, listed in ``too_short_ids`` and logged.
        max_samples: crop longer utterances to this many samples (None: never crop).
        random_crop: crop at a random offset (a function of ``seed``, the epoch and the index);
            False: keep the start (fairseq's non-random crop), which is what evaluation wants.
        seed: seed of the crop offsets.
        labels: frame labels, one int sequence per utterance in ``utterances`` order: a list (one
            label set, named :data:`DEFAULT_LABEL_NAME`) or a dict name -> list (several sets,
            e.g. multi-cluster targets).
        label_rate: labels per second (50 for the CNN frame rate, 100 for MFCC frames); a float
            for all sets or a dict name -> rate. ``16000 / rate`` must be a whole number.
        label_tolerance: largest accepted ``|seconds - n_labels / rate|``; a label file that
            disagrees more with the audio is in the wrong order or for other audio, and raises.
        max_bad: how many distinct unloadable files to skip (logged, counted, item ``None``)
            before raising; 0 raises on the first.

    Raises:
        ValueError: bad arguments, or labels whose count or lengths do not fit the utterances
            (the message lists the first offending ids and how many there are).
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        *,
        min_samples: int = MIN_SAMPLES,
        max_samples: int | None = None,
        random_crop: bool = True,
        seed: int = 0,
        labels: Sequence[Sequence[int]] | Mapping[str, Sequence[Sequence[int]]] | None = None,
        label_rate: float | Mapping[str, float] | None = None,
        label_tolerance: float = LABEL_TOLERANCE_S,
        max_bad: int = 0,
    ):
        if min_samples < MIN_SAMPLES:
            raise ValueError(f"min_samples={min_samples} is below one CNN frame ({MIN_SAMPLES} samples); "
                             "load_audio refuses such audio anyway")
        if max_samples is not None and max_samples < min_samples:
            raise ValueError(f"max_samples={max_samples} is smaller than min_samples={min_samples}")
        if max_bad < 0:
            raise ValueError(f"max_bad must be >= 0, got {max_bad}")
        self.min_samples = int(min_samples)
        self.max_samples = None if max_samples is None else int(max_samples)
        self.random_crop = random_crop
        self.seed = int(seed)
        self.epoch = 0
        self.max_bad = int(max_bad)
        self.bad_ids: set[str] = set()  # distinct utterances that failed to load in this process
        self.tracker: ReadTracker | None = None  # set by track_workers (make_loader with workers)

        full = np.array([resampled_length(u.num_samples, u.sample_rate) for u in utterances], dtype=np.int64)
        label_sets = _normalise_labels(labels, label_rate, len(utterances))
        for name, (rows, rate) in label_sets.items():
            _check_label_lengths(name, rows, rate, full, utterances, label_tolerance)

        keep = np.flatnonzero(full >= self.min_samples)
        dropped = [utterances[i].id for i in np.flatnonzero(full < self.min_samples)]
        self.num_too_short = len(dropped)
        self.too_short_ids = dropped
        if dropped:
            _warn_once(f"dropped {len(dropped)} of {len(utterances)} utterances shorter than {self.min_samples} "
                       f"samples ({self.min_samples / SAMPLE_RATE:.2f} s) at 16 kHz: {', '.join(dropped[:_SHOWN])}"
                       + (" ..." if len(dropped) > _SHOWN else ""))

        self.utterances: list[Utterance] = [utterances[i] for i in keep]
        self.full_lengths: np.ndarray = full[keep]
        """``(N,)`` int64: each kept utterance's length in 16 kHz samples."""
        self.lengths: np.ndarray = (self.full_lengths if self.max_samples is None
                                    else np.minimum(self.full_lengths, self.max_samples))
        """``(N,)`` int64: each item's length after cropping (what the sampler budgets)."""

        # Labels are kept as one flat int64 array plus offsets per set: cheap to hold for a 960 h
        # corpus, and numpy buffers are not touched by refcounting, so forked DataLoader workers
        # share them instead of slowly copying millions of Python ints.
        self.label_rates: dict[str, float] = {}
        self._hops: dict[str, int] = {}
        self._labels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (rows, rate) in label_sets.items():
            kept = [rows[i] for i in keep]
            sizes = np.array([len(r) for r in kept], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            flat = (np.concatenate([np.asarray(r, dtype=np.int64) for r in kept]) if kept
                    else np.zeros(0, dtype=np.int64))
            self._labels[name] = (flat, offsets)
            self.label_rates[name] = rate
            self._hops[name] = _hop(name, rate)
        # Crop offsets on a grid every label set shares keep every set exactly aligned.
        self.crop_hop: int = math.lcm(*self._hops.values()) if self._hops else 1

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops ``__getitem__`` returns (call before iterating; a
        DataLoader with ``persistent_workers=True`` would not see it)."""
        self.epoch = int(epoch)

    def crop_offset(self, index: int, epoch: int | None = None) -> int:
        """Start of item ``index``'s crop in 16 kHz samples: a multiple of ``crop_hop``, drawn from
        ``default_rng((seed, epoch, index))``, so the same (seed, epoch, index) always crops the
        same way; 0 when the item is not cropped or ``random_crop`` is False."""
        epoch = self.epoch if epoch is None else epoch
        return self._offset(int(self.full_lengths[index]), index, epoch)

    def _offset(self, length: int, index: int, epoch: int) -> int:
        if self.max_samples is None or length <= self.max_samples or not self.random_crop:
            return 0
        steps = (length - self.max_samples) // self.crop_hop  # last start that still fits
        rng = np.random.default_rng((self.seed, epoch, index))
        return int(rng.integers(0, steps + 1)) * self.crop_hop

    def track_workers(self, num_workers: int) -> ReadTracker:
        """Have DataLoader workers note the item each is reading (see :class:`ReadTracker`);
        called before the workers start (``make_loader`` does it when ``num_workers > 0``)."""
        self.tracker = ReadTracker(num_workers, self)
        return self.tracker

    def __getitem__(self, index: int) -> Example | None:
        """Load, check and crop item ``index``; ``None`` for a skipped bad file (``max_bad > 0``)."""
        tracker = self.tracker
        if tracker is None:
            return self._getitem(index)
        slot = tracker.start(index)
        try:
            return self._getitem(index)
        finally:
            tracker.done(slot)

    def _getitem(self, index: int) -> Example | None:
        utt = self.utterances[index]
        expected = int(self.full_lengths[index])
        try:
            wav = load_audio(utt.path)
            if wav.shape[0] != expected:
                # Batch budgets and label alignment were computed from the manifest length.
                raise AudioError(utt.path, f"holds {wav.shape[0]} samples at 16 kHz, the manifest's "
                                           f"{utt.num_samples} at {utt.sample_rate} Hz make {expected}")
        except AudioError as e:
            return self._bad(utt, e)
        offset = self._offset(expected, index, self.epoch)
        if self.max_samples is not None and expected > self.max_samples:
            wav = wav[offset:offset + self.max_samples].copy()  # copy: let the whole file's buffer go
        labels = {}
        for name, (flat, offsets) in self._labels.items():
            row = flat[offsets[index]:offsets[index + 1]]
            if offset or wav.shape[0] < expected:
                hop = self._hops[name]
                start = offset // hop  # exact: offset is a multiple of crop_hop, hence of hop
                row = row[start:start + round(wav.shape[0] / hop)]
            labels[name] = torch.from_numpy(row.copy())
        return Example(id=utt.id, waveform=torch.from_numpy(wav), offset=offset, labels=labels,
                       speaker=utt.speaker, style=utt.style)

    def _bad(self, utt: Utterance, err: AudioError) -> None:
        reason = f"{err.reason} (utterance {utt.id!r})"
        if self.max_bad == 0:
            raise AudioError(err.path, reason) from None
        if utt.id in self.bad_ids:  # met again in a later epoch: skipped, already logged and counted
            return None
        self.bad_ids.add(utt.id)
        if len(self.bad_ids) > self.max_bad:
            raise AudioError(err.path, f"{reason}; {len(self.bad_ids)} unloadable files in this process, "
                                       f"more than max_bad={self.max_bad}") from None
        log.warning("skipping %s: %s [%d of at most %d bad files skipped]",
                    err.path, reason, len(self.bad_ids), self.max_bad)
        return None


def _normalise_labels(labels, label_rate, n: int) -> dict[str, tuple[Sequence[Sequence[int]], float]]:
    if labels is None:
        return {}
    if label_rate is None:
        raise ValueError("labels need a label_rate (50 for CNN-frame targets, 100 for MFCC frames)")
    sets = dict(labels) if isinstance(labels, Mapping) else {DEFAULT_LABEL_NAME: labels}
    if not sets:
        return {}
    out = {}
    for name, rows in sets.items():
        if isinstance(label_rate, Mapping):
            if name not in label_rate:
                raise ValueError(f"no label_rate given for label set {name!r}")
            rate = float(label_rate[name])
        else:
            rate = float(label_rate)
        _hop(name, rate)  # refuse an unalignable rate before comparing lengths with it
        if len(rows) != n:
            raise ValueError(f"label set {name!r} has {len(rows)} rows for {n} utterances")
        out[name] = (rows, rate)
    return out


def _hop(name: str, rate: float) -> int:
    hop = SAMPLE_RATE / rate if rate > 0 else 0.0
    if hop < 1 or hop != int(hop):
        raise ValueError(f"label set {name!r}: label_rate {rate:g} Hz is not 16000 / a whole number of "
                         "samples (50 Hz -> 320, 100 Hz -> 160), so crops could not keep it aligned")
    return int(hop)


def _check_label_lengths(name, rows, rate, full, utterances, tolerance) -> None:
    bad = []
    for i, row in enumerate(rows):
        diff = abs(full[i] / SAMPLE_RATE - len(row) / rate)
        if diff > tolerance:
            bad.append(f"{utterances[i].id} ({full[i] / SAMPLE_RATE:.2f} s of audio, {len(row)} labels "
                       f"= {len(row) / rate:.2f} s)")
    if bad:
        more = f" ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise ValueError(f"label set {name!r} at {rate:g} Hz disagrees with the audio by more than "
                         f"{tolerance:g} s for {len(bad)} utterance(s) (wrong order or wrong file?): "
                         + "; ".join(bad[:_SHOWN]) + more)


# ---------------------------------------------------------------------------------------------
# Dead DataLoader workers


class WorkerDiedError(RuntimeError):
    """A DataLoader worker process died (killed by a signal or exited) without raising a Python
    exception; the message names the file it was reading. ``path`` and ``utterance`` are None
    when the worker was not reading one."""

    def __init__(self, message: str, path: str | None = None, utterance: str | None = None):
        super().__init__(message)
        self.path, self.utterance = path, utterance


_PID, _ITEM, _READING = range(3)
_TRACKERS: weakref.WeakSet[ReadTracker] = weakref.WeakSet()  # every live tracker of this process


class ReadTracker:
    """Which item each DataLoader worker of one dataset is reading, in shared memory.

    One row per worker id: (pid, item index, 1 while reading / 0 after), -1 before its first item.
    A worker writes its own row at the start and end of every item, so a worker that dies leaves
    behind what it was doing; the main process maps the pid in torch's error to that row.
    A ``torch`` tensor in shared memory reaches the workers under every start method (inherited
    on fork, passed as a shared-memory handle on spawn/forkserver).
    """

    def __init__(self, num_workers: int, dataset: AudioDataset):
        if num_workers < 1:
            raise ValueError(f"a ReadTracker needs num_workers >= 1, got {num_workers}")
        self.rows = torch.full((num_workers, 3), -1, dtype=torch.int64).share_memory_()
        self._dataset = weakref.ref(dataset)  # the main process's; workers only write rows
        _TRACKERS.add(self)

    def __getstate__(self):  # sent to spawned workers with the dataset: the rows only
        return {"rows": self.rows}

    def __setstate__(self, state):
        self.rows = state["rows"]
        self._dataset = lambda: None

    def reset(self) -> None:
        """Forget the last workers' rows (called before a new iterator starts its workers)."""
        self.rows.fill_(-1)

    def start(self, index: int) -> int | None:
        """In a worker: note that item ``index`` is being read; returns the row (None outside a worker)."""
        info = torch.utils.data.get_worker_info()
        if info is None or info.id >= self.rows.shape[0]:
            return None
        row = self.rows[info.id]
        row[_PID], row[_ITEM], row[_READING] = os.getpid(), index, 1
        return info.id

    def done(self, slot: int | None) -> None:
        if slot is not None:
            self.rows[slot, _READING] = 0

    def explain(self, pid: int, reason: str) -> WorkerDiedError | None:
        """The error for worker ``pid`` of this tracker's dataset, or None if it is not one of its workers."""
        dataset = self._dataset()
        if dataset is None:
            return None
        for worker, (row_pid, item, reading) in enumerate(self.rows.tolist()):
            if row_pid != pid:
                continue
            utt = dataset.utterances[item]
            where = "while reading" if reading == 1 else "after reading (between items)"
            return WorkerDiedError(f"DataLoader worker {worker} (pid {pid}) died {where} {utt.path} "
                                   f"(utterance {utt.id!r}): {reason}. Check the file, or leave it out of the manifest",
                                   path=utt.path, utterance=utt.id)
        return None


_TORCH_WORKER = re.compile(r"DataLoader worker \(pids?(?:\(s\))? ([\d, ]+)\)\s*(.*)", re.S)


def _reason(exitcode: int | None, torch_text: str) -> str:
    """Why a worker died, in words, from its exit code (when known) or torch's own words."""
    if exitcode is None:  # torch's SIGCHLD handler says "is killed by signal: Killed." / "exit code 3."
        by_signal = re.search(r"killed by signal: ([^.]+)", torch_text)
        code = re.search(r"exit code (\d+)", torch_text)
        if by_signal and by_signal.group(1).strip() == "Killed":
            exitcode = -signal.SIGKILL
        elif code:
            exitcode = int(code.group(1)) or None
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if name == "SIGKILL":
            return "it was killed by SIGKILL, most likely by the out-of-memory killer (is the file very long?)"
        return f"it was killed by {name} (a crash in the file's decoder?)"
    if exitcode is not None and exitcode > 0:
        return f"it exited with status {exitcode} without raising an error (a crash in the file's decoder?)"
    text = " ".join(torch_text.split()).split(". ")[0].rstrip(".")
    return f"torch: the worker {text or 'exited unexpectedly'}"


def explain_worker_death(error: BaseException, exit_codes: Mapping[int, int | None] | None = None
                         ) -> WorkerDiedError | None:
    """torch's error for a dead DataLoader worker ("DataLoader worker (pid N) is killed by signal:
    Killed.", "... exited unexpectedly ...") as a :class:`WorkerDiedError` naming the file the
    worker was reading; None for any other error, or for a worker of no tracked dataset.

    torch raises this error from the batch fetch, or from its SIGCHLD handler at any point of the
    main process, so callers that see the whole run (the CLI) call this too.

    Args:
        exit_codes: pid -> exit code of the loader's workers, where the caller knows them
            (negative: killed by that signal), for a more precise reason than torch's message.
    """
    if isinstance(error, WorkerDiedError) or not isinstance(error, RuntimeError):
        return None
    match = _TORCH_WORKER.search(str(error))
    if match is None:
        return None
    pids = [int(p) for p in re.findall(r"\d+", match.group(1))]
    codes = exit_codes or {}
    for pid in pids:
        explained = _explain_pid(pid, _reason(codes.get(pid), match.group(2)))
        if explained is not None:
            return explained
    shown = ", ".join(map(str, pids))
    return WorkerDiedError(f"DataLoader worker (pid {shown}) died before reading any file: "
                           f"{_reason(codes.get(pids[0]) if pids else None, match.group(2))}")


def _explain_pid(pid: int, reason: str) -> WorkerDiedError | None:
    """The error naming the file worker ``pid`` was reading, from the tracked dataset that knows it."""
    for tracker in list(_TRACKERS):
        explained = tracker.explain(pid, reason)
        if explained is not None:
            return explained
    return None


def _explain_exit_codes(exit_codes: Mapping[int, int | None]) -> WorkerDiedError | None:
    """The error for the first worker in ``exit_codes`` (pid -> exit code) that died, naming the
    file it was reading; None when none of them has a non-zero exit code."""
    for pid, code in exit_codes.items():
        if code:
            reason = _reason(code, "")
            return _explain_pid(pid, reason) or WorkerDiedError(
                f"DataLoader worker (pid {pid}) died before reading any file: {reason}")
    return None


_EXIT_WAIT_S = 5.0  # how long a closed result pipe waits for its worker's exit code


class TrackedLoader(DataLoader):
    """A DataLoader whose iterators report a dead worker as a :class:`WorkerDiedError` naming
    the file it was reading (with ``num_workers == 0`` it is a plain DataLoader)."""

    def __iter__(self):
        tracker = getattr(self.dataset, "tracker", None)
        if self.num_workers == 0 or tracker is None:
            return super().__iter__()
        tracker.reset()
        return _ReportingIterator(super().__iter__())


class _ReportingIterator:
    def __init__(self, it):
        self._it = it

    def __iter__(self):
        return self

    def __next__(self):
        if self._it is None:  # shut down after a worker died
            raise StopIteration
        try:
            return next(self._it)
        except (RuntimeError, EOFError, ConnectionError) as e:
            error = e
        try:
            explained = self._explain(error)
        except RuntimeError as again:  # torch's SIGCHLD handler, firing while the workers are read
            explained = explain_worker_death(again, self._exit_codes())
        if explained is None:
            raise error
        # Shut the other workers down now: until torch's iterator is gone, its SIGCHLD handler
        # raises the same error again at the next child process that exits, anywhere.
        it, self._it = self._it, None
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            try:
                shutdown()
            except RuntimeError:  # the handler again, for the dead worker; shutdown's finally has run
                pass
        raise explained

    def _exit_codes(self) -> dict[int, int | None]:
        # torch's iterator keeps its worker processes in a private list; their exit codes (read
        # if it is there) tell a SIGKILL from a crash.
        workers = getattr(self._it, "_workers", None) or []
        return {w.pid: w.exitcode for w in workers if getattr(w, "pid", None) is not None}

    def _explain(self, error: BaseException) -> WorkerDiedError | None:
        if isinstance(error, RuntimeError):
            return explain_worker_death(error, self._exit_codes())
        # A worker that dies can show up first as its result pipe closing (EOFError,
        # ConnectionResetError) while the process is not yet reaped, so neither torch nor its
        # exit code knows yet: wait a moment for the exit code to say which worker it was.
        deadline = time.monotonic() + _EXIT_WAIT_S
        while True:
            explained = _explain_exit_codes(self._exit_codes())
            if explained is not None or time.monotonic() >= deadline:
                return explained
            time.sleep(0.02)

    def __len__(self) -> int:
        return 0 if self._it is None else len(self._it)


# ---------------------------------------------------------------------------------------------
# Collation


@dataclass
class Batch:
    """A padded batch.

    Attributes:
        waveforms: ``(B, S)`` float32, zero-padded after each item's length.
        lengths: ``(B,)`` int64 absolute lengths in samples.
        ids: the B utterance ids.
        offsets: ``(B,)`` int64 crop starts in the whole utterances (16 kHz samples).
        labels: name -> ``(B, T)`` int64, padded with :data:`LABEL_PAD`; empty without labels.
        label_lengths: name -> ``(B,)`` int64 absolute label counts.
        speakers, styles: per item, ``None`` where the manifest has none.
        num_skipped: bad files dropped from this batch (``max_bad > 0``).
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    ids: list[str]
    offsets: torch.Tensor
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    label_lengths: dict[str, torch.Tensor] = field(default_factory=dict)
    speakers: list[str | None] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)
    num_skipped: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def padding_mask(self) -> torch.Tensor:
        """``(B, S)`` bool, True at padding."""
        steps = torch.arange(self.waveforms.shape[1], device=self.lengths.device)
        return steps[None, :] >= self.lengths[:, None]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        return replace(self, waveforms=fn(self.waveforms), lengths=fn(self.lengths), offsets=fn(self.offsets),
                       labels={k: fn(v) for k, v in self.labels.items()},
                       label_lengths={k: fn(v) for k, v in self.label_lengths.items()})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory (the DataLoader calls this when ``pin_memory=True``)."""
        return self._map(lambda t: t.pin_memory())


def collate(items: Sequence[Example | None]) -> Batch:
    """Zero-pad examples into a :class:`Batch`; ``None`` items (skipped bad files) are dropped and
    counted. All examples must carry the same label sets."""
    kept = [x for x in items if x is not None]
    n = len(kept)
    waves, lengths = pad_waveforms([x.waveform for x in kept])
    names = list(kept[0].labels) if kept else []
    labels, label_lengths = {}, {}
    for name in names:
        rows = [x.labels[name] for x in kept]
        lab_len = torch.tensor([r.shape[0] for r in rows], dtype=torch.int64)
        lab = torch.full((n, int(lab_len.max())), LABEL_PAD, dtype=torch.int64)
        for i, r in enumerate(rows):
            lab[i, : r.shape[0]] = r
        labels[name], label_lengths[name] = lab, lab_len
    return Batch(
        waveforms=waves, lengths=lengths, ids=[x.id for x in kept],
        offsets=torch.tensor([x.offset for x in kept], dtype=torch.int64),
        labels=labels, label_lengths=label_lengths,
        speakers=[x.speaker for x in kept], styles=[x.style for x in kept],
        num_skipped=len(items) - n,
    )


# ---------------------------------------------------------------------------------------------
# Sampling


class SecondsBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices holding at most ``max_seconds`` of padded audio, DDP-aware and
    resumable.

    Each epoch: shuffle the indices with ``(seed, epoch)``, cut them into buckets of
    ``bucket_size``, sort each bucket longest first (ties keep the shuffled order) and fill batches
    greedily so that ``batch size x longest item <= max_seconds * sample_rate`` (the padded size the
    model sees); then shuffle the order of the batches. All ranks compute the same list and rank
    ``r`` takes batches ``r, r + R, r + 2R, ...`` of it, after padding it (repeating its first
    batches) or cutting it (``drop_last``) to a multiple of ``R`` so that every rank runs the same
    number of steps. Without ``shuffle`` the indices keep their order (buckets are consecutive runs)
    and so do the batches.

    An item longer than the budget on its own forms a batch of one (logged at construction); set
    ``max_samples`` (the dataset's crop) to rule this out.

    Args:
        lengths: ``(N,)`` item lengths in samples at ``sample_rate`` (``AudioDataset.lengths``).
        max_seconds: padded seconds per batch.
        sample_rate: rate of ``lengths``.
        max_samples: cap lengths at this (the crop length), if ``lengths`` are uncropped.
        shuffle: shuffle items and batches by ``(seed, epoch)``.
        seed: the shuffling seed; identical on all ranks.
        num_replicas, rank: DDP world size and this process's rank (default: from
            ``torch.distributed`` when initialised, else 1 and 0).
        drop_last: cut the batch list to a multiple of ``num_replicas`` instead of padding it.
        bucket_size: items sorted together; larger means less padding and less varied batches.
        epoch_callbacks: called with the epoch by ``set_epoch``/``load_state_dict`` (``make_loader``
            passes the dataset's ``set_epoch`` so crops follow the sampler's epoch).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        *,
        max_seconds: float,
        sample_rate: int = SAMPLE_RATE,
        max_samples: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        bucket_size: int = 1000,
        epoch_callbacks: Sequence[Callable[[int], None]] = (),
    ):
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if max_samples is not None:
            lengths = np.minimum(lengths, max_samples)
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1, got {bucket_size}")
        num_replicas, rank = _world(num_replicas, rank)
        self.lengths = lengths
        self.budget = int(max_seconds * sample_rate)
        """Padded samples allowed per batch."""
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.bucket_size = int(bucket_size)
        self.epoch_callbacks = list(epoch_callbacks)
        self.epoch = 0
        self._position = 0  # batches of this epoch handed out by the running/last iterator
        self._resume = 0  # where the next iterator starts (set by load_state_dict)
        self._cache: tuple[int, list[list[int]]] | None = None
        over = int((lengths > self.budget).sum())
        if over:
            log.warning("%d item(s) are longer than the %.2f s batch budget on their own and get a batch "
                        "each (crop them with max_samples to avoid this)", over, max_seconds)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: new shuffle, position 0; the callbacks get the epoch too."""
        self.epoch = int(epoch)
        self._position = self._resume = 0
        for fn in self.epoch_callbacks:
            fn(self.epoch)

    def global_batches(self, epoch: int | None = None) -> list[list[int]]:
        """All ranks' batches for ``epoch``, before the split over ranks."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        batches: list[list[int]] = []
        for b in range(0, len(order), self.bucket_size):
            bucket = order[b:b + self.bucket_size]
            bucket = bucket[np.argsort(-self.lengths[bucket], kind="stable")]
            i = 0
            while i < len(bucket):
                # Longest first: the first item fixes the padded length of the whole batch.
                take = max(1, self.budget // max(int(self.lengths[bucket[i]]), 1))
                batches.append(bucket[i:i + take].tolist())
                i += take
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch (the same count on every rank)."""
        if self._cache is None or self._cache[0] != self.epoch:
            batches = self.global_batches()
            r, n = self.num_replicas, len(batches)
            if self.drop_last:
                batches = batches[: n - n % r]
            elif n % r and n:
                pad = r - n % r
                batches = batches + [batches[j % n] for j in range(pad)]
            self._cache = (self.epoch, batches[self.rank::r])
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        start, self._resume = self._resume, 0
        self._position = start
        for batch in batches[start:]:
            self._position += 1
            yield list(batch)

    def __len__(self) -> int:
        """Batches the next iterator yields (fewer than a whole epoch right after a resume)."""
        return len(self.rank_batches()) - self._resume

    def state_dict(self, position: int | None = None) -> dict[str, int]:
        """Plain ints for a checkpoint (``torch.load(weights_only=True)`` reads them back).

        Args:
            position: batches of the current epoch the training loop has consumed, counting
                those before a resume. Default: the batches this sampler has handed out, which
                is exact only with ``num_workers=0`` — DataLoader workers prefetch batches ahead
                of the loop, so a loop with workers must pass its own count.
        """
        pos = self._position if position is None else int(position)
        if not 0 <= pos <= len(self.rank_batches()):
            raise ValueError(f"position {pos} is outside epoch {self.epoch}'s "
                             f"{len(self.rank_batches())} batches")
        return {"epoch": self.epoch, "position": pos, "seed": self.seed,
                "num_replicas": self.num_replicas, "num_items": len(self.lengths)}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue where :meth:`state_dict` left off: the next iterator starts with the batch
        after the last consumed one. Refuses a state from another seed, world size or dataset
        size, where the position would point at different data."""
        for key, mine in (("seed", self.seed), ("num_replicas", self.num_replicas),
                          ("num_items", len(self.lengths))):
            if int(state[key]) != mine:
                raise ValueError(f"sampler state has {key}={state[key]}, this sampler {mine}: "
                                 "resuming would not continue the same sequence of batches")
        self.set_epoch(int(state["epoch"]))
        pos = int(state["position"])
        if not 0 <= pos <= len(self.rank_batches()):
            raise ValueError(f"sampler state position {pos} is outside epoch {self.epoch}'s "
                             f"{len(self.rank_batches())} batches")
        self._resume = self._position = pos


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
    return int(num_replicas), int(rank)


# ---------------------------------------------------------------------------------------------


def make_loader(
    utterances: Sequence[Utterance],
    *,
    max_seconds: float,
    min_samples: int = PRETRAIN_MIN_SAMPLES,
    max_samples: int | None = PRETRAIN_MAX_SAMPLES,
    random_crop: bool = True,
    shuffle: bool = True,
    labels: Sequence[Sequence[int]] | Mapping[str, Sequence[Sequence[int]]] | None = None,
    label_rate: float | Mapping[str, float] | None = None,
    num_workers: int = 0,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    drop_last: bool = False,
    bucket_size: int = 1000,
    max_bad: int = 0,
    pin_memory: bool | None = None,
) -> tuple[DataLoader, SecondsBatchSampler]:
    """A DataLoader of :class:`Batch` es and its sampler (defaults: pretraining, 2-15.625 s crops).

    Call ``sampler.set_epoch(epoch)`` before each epoch (it sets the dataset's crop epoch too) and
    save ``sampler.state_dict(position=...)`` to resume. Workers are not persistent, so each epoch's
    workers see the current epoch. ``pin_memory`` defaults to CUDA being available. With workers,
    a worker that dies is reported as a :class:`WorkerDiedError` naming the file it was reading.
    """
    dataset = AudioDataset(utterances, min_samples=min_samples, max_samples=max_samples,
                           random_crop=random_crop, seed=seed, labels=labels, label_rate=label_rate,
                           max_bad=max_bad)
    if num_workers > 0:
        dataset.track_workers(num_workers)
    sampler = SecondsBatchSampler(dataset.lengths, max_seconds=max_seconds, shuffle=shuffle, seed=seed,
                                  num_replicas=world_size, rank=rank, drop_last=drop_last,
                                  bucket_size=bucket_size, epoch_callbacks=[dataset.set_epoch])
    # A private generator: every new iterator draws its workers' base seed from it, so starting an
    # epoch (or resuming) never consumes the global torch RNG that dropout uses — otherwise a
    # resumed run would drift from an uninterrupted one.
    loader = TrackedLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                        persistent_workers=False, generator=torch.Generator().manual_seed(seed))
    return loader, sampler


__all__ = [
    "AudioDataset", "Example", "Batch", "collate", "SecondsBatchSampler", "make_loader",
    "ReadTracker", "TrackedLoader", "WorkerDiedError", "explain_worker_death",
    "PRETRAIN_MIN_SAMPLES", "PRETRAIN_MAX_SAMPLES", "LABEL_PAD", "DEFAULT_LABEL_NAME",
]
