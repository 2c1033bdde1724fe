"""How every ``jooci`` command reports a failure: one line on stderr, exit status 2.

An input problem is an exception whose class jooci defines (``ConfigError``, ``ManifestError``,
``ExtractError``, ...) or a ``ValueError`` / ``OSError`` raised by jooci's own checks or Python's
standard library (a missing file, a broken JSON file). Such an error prints
``jooci COMMAND: error: MESSAGE`` and the command returns 2. The same kinds of error raised deep
inside another installed package (torch, numpy, ...) are likely bugs in jooci: the traceback is
printed after the line, so they can be reported. Any other exception propagates with its
traceback: it is a bug, not bad input. One exception of torch's is input trouble too: a DataLoader
worker that died (torch raises it wherever the main process happens to be); it is reported with
the file the worker was reading (:func:`jooci.data.dataset.explain_worker_death`).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

EXIT_ERROR = 2

_JOOCI = Path(__file__).resolve().parents[1]  # the installed jooci package, wherever it lives


def is_input_error(e: BaseException) -> bool:
    """Whether ``e`` is reported as one line (see the module docstring)."""
    if type(e).__module__.split(".")[0] == "jooci":
        return True
    return isinstance(e, (ValueError, OSError))


def raised_in_a_package(e: BaseException) -> bool:
    """Whether the innermost frame of ``e``'s traceback is an installed package other than jooci
    (torch, numpy, ...): a failure deep inside a library, not one of jooci's own checks."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    if where.is_relative_to(_JOOCI):
        return False
    return "site-packages" in where.parts or "dist-packages" in where.parts


def worker_death(e: BaseException) -> BaseException | None:
    """torch's "DataLoader worker (pid N) ..." error as jooci's error naming the file the worker
    was reading; None for any other exception."""
    if not isinstance(e, RuntimeError) or "DataLoader worker" not in str(e):
        return None
    from jooci.data.dataset import explain_worker_death

    return explain_worker_death(e)


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line (a ``KeyError``'s quotes and an empty message handled)."""
    text = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
    return text or type(e).__name__


def print_error(command: str, message: str) -> int:
    """Print ``jooci COMMAND: error: MESSAGE`` to stderr, on a line of its own; returns the exit status."""
    close_progress_bars()
    print(f"jooci {command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def close_progress_bars() -> None:
    """Close the tqdm bars an error left open (the exception's traceback keeps them alive), so the
    error line starts a line of its own instead of continuing a bar's."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.close()


def reports_errors(command: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a command's ``run(args) -> int`` so that input errors become one line and status 2."""

    def wrap(run: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(run)
        def guarded(*args, **kwargs) -> int:
            try:
                return run(*args, **kwargs)
            except Exception as e:
                died = worker_death(e)
                if died is not None:
                    return print_error(command, one_line(died))
                if not is_input_error(e):
                    raise
                status = print_error(command, one_line(e))
                if raised_in_a_package(e):
                    traceback.print_exception(e, file=sys.stderr)
                    print(f"jooci {command}: the error above was raised inside a library, not by jooci's own "
                          "checks: this is likely a bug in jooci; please report it with the traceback",
                          file=sys.stderr)
                return status

        return guarded

    return wrap
