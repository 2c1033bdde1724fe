"""jooci: JOOCI (arXiv 2410.11086), two encoders for what is said and how it is said.

``from jooci import JOOCI, HuBERTBaseline, load`` — imported on first use, so the ``jooci``
command starts without loading torch.
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"JOOCI": "jooci.models", "HuBERTBaseline": "jooci.models", "load": "jooci.hub"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jooci' has no attribute {name!r}")


__all__ = ["JOOCI", "HuBERTBaseline", "load", "__version__"]
