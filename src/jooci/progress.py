"""Progress of long work: a tqdm bar on a terminal, plain log lines under a batch scheduler.

A bar redrawn with carriage returns is unreadable in a SLURM log file, so when stderr is not a
terminal :func:`progress` gives a :class:`PlainProgress` instead: one INFO line on the
``jooci.progress`` logger every ``interval`` seconds (default :data:`INTERVAL`, or the
``JOOCI_PROGRESS_SECONDS`` environment variable) and one when the work ends::

    12:04:31 INFO jooci.progress: extract: 1200/5000 utt (24 %) | 41.2 utt/s | ETA 0:01:32 | skipped 3

Both objects take the same calls (iteration, ``update``, ``set_postfix``, ``close``, ``with``), so
a call site does not care which it got. ``enabled=False`` (a command's ``--no-progress``) turns
both off. The training loop writes its own per-record line (:mod:`jooci.train.loop`), which
carries the losses.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

INTERVAL = 60.0
"""Seconds between two plain progress lines."""


def is_terminal() -> bool:
    """Whether stderr (where bars and log lines go) is a terminal."""
    return sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def _interval() -> float:
    raw = os.environ.get("JOOCI_PROGRESS_SECONDS")
    if raw is None:
        return INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"JOOCI_PROGRESS_SECONDS must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"JOOCI_PROGRESS_SECONDS must be positive, got {raw!r}")
    return value


def _clock_text(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class PlainProgress:
    """Counts work and logs one plain line every ``interval`` seconds and one at :meth:`close`."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", initial: float = 0, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.initial = initial, initial
        self.interval = _interval() if interval is None else float(interval)
        self.postfix: dict[str, Any] = {}
        self._clock, self._log = clock, logger
        self._start = self._last = clock()
        self._closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("PlainProgress was not given an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._log.info("%s", self.line(now))

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs) -> None:
        self.postfix.update(ordered_dict or {}, **kwargs)

    def line(self, now: float | None = None) -> str:
        """The progress line as it stands: count (of total), rate, ETA and the postfix values."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self.initial) / elapsed
        done = f"{_number(self.n)}/{_number(self.total)} {self.unit}" if self.total else f"{_number(self.n)} {self.unit}"
        parts = [f"{self.desc}: {done}" if self.desc else done]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if self.total and rate > 0 and not self._closed:
            parts.append(f"ETA {_clock_text((self.total - self.n) / rate)}")
        if self._closed:
            parts.append(f"took {_clock_text(elapsed)}")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        return " | ".join(parts)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._log.info("%s", self.line())


def _number(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, initial: float = 0, leave: bool = True, **tqdm_kwargs):
    """A progress counter over ``iterable`` (or updated by hand up to ``total``): a tqdm bar when
    stderr is a terminal, a :class:`PlainProgress` when it is not, and a silent tqdm when
    ``enabled`` is false."""
    from tqdm import tqdm

    if enabled and not is_terminal():
        return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                disable=not enabled, **tqdm_kwargs)


__all__ = ["INTERVAL", "PlainProgress", "is_terminal", "progress"]
