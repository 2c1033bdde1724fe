"""Optional dependencies: each one belongs to an extra of the ``jooci`` package.

``pip install jooci`` installs what loading, pretraining and evaluating need. The rest is optional::

    synth        espeakng-loader   JOOCI-synth (``jooci synth``, ``jooci demo``)
                 pyroomacoustics   the rooms of JOOCI-synth's recording sessions
    plots        matplotlib        the PNG plots of ``jooci report`` and ``jooci demo``
    faiss        faiss-cpu         faster k-means for targets (scikit-learn is the fallback)
    tensorboard  tensorboard       TensorBoard event files of pretraining and evaluation

``require(module)`` imports one of them or raises :class:`MissingExtraError`, whose message names
the extra to install (``pip install 'jooci[synth]'``); ``check(*modules)`` raises it up front, before
a long run that needs them. Two side outputs of long runs are skipped with a warning instead of
failing the run: TensorBoard events (``metrics.jsonl`` holds the same numbers) and the
``layer_weights.png`` beside an evaluation's ``results.json``; k-means without faiss uses
scikit-learn.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# module imported -> (extra, PyPI package, what needs it)
EXTRAS: dict[str, tuple[str, str, str]] = {
    "espeakng_loader": ("synth", "espeakng-loader", "JOOCI-synth"),
    "pyroomacoustics": ("synth", "pyroomacoustics", "JOOCI-synth's room simulation"),
    "matplotlib": ("plots", "matplotlib", "plotting"),
    "faiss": ("faiss", "faiss-cpu", "faiss k-means"),
    "tensorboard": ("tensorboard", "tensorboard", "TensorBoard logging"),
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def missing_message(module: str) -> str:
    extra, package, what = EXTRAS[module]
    return f"{what} needs {package}, which is not installed: pip install 'jooci[{extra}]'"


def require(module: str) -> ModuleType:
    """Import ``module`` (a key of :data:`EXTRAS`, or a submodule of one)."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if top not in EXTRAS:
            raise
        raise MissingExtraError(missing_message(top)) from e


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def check(*modules: str) -> None:
    """Raise :class:`MissingExtraError` for the first of ``modules`` that is not installed, before
    a long run that would need it at its end."""
    for module in modules:
        if not available(module):
            raise MissingExtraError(missing_message(module))


__all__ = ["EXTRAS", "MissingExtraError", "available", "check", "missing_message", "require"]
