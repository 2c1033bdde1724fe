"""Frozen config dataclasses <-> JSON-able dicts, strictly.

Every component config in :mod:`jooci.models` is a frozen dataclass next to its module. These two
helpers turn one into a plain dict (tuples become lists, nested configs become dicts) and back.
Reading is strict: an unknown key raises :class:`ConfigError` naming the key and the config, so a
typo in a config file fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config dict that does not fit its dataclass; the message names the key."""


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A frozen config dataclass as a JSON-able dict (nested configs recursively)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a config dataclass instance, got {type(cfg).__name__}")
    return {f.name: _to_plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _to_plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return config_to_dict(v)
    if isinstance(v, (tuple, list)):
        return [_to_plain(x) for x in v]
    return v


def config_from_dict(cls: type[T], d: dict[str, Any], where: str = "") -> T:
    """Build config ``cls`` from ``d``; missing keys take defaults, unknown keys are refused.

    Raises:
        ConfigError: an unknown key (named, with the dotted path), a missing required key, or a
            value of the wrong kind.
    """
    where = where or cls.__name__
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"known keys: {', '.join(sorted(names))}")
    kwargs = {k: _from_plain(hints[k], v, f"{where}.{k}") for k, v in d.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {e}") from None


def _from_plain(tp: Any, v: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _from_plain(non_none[0], v, where)
        return v
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, v, where)
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(v).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(args[0], x, f"{where}[{i}]") for i, x in enumerate(v))
        if len(args) != len(v):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(v)}")
        return tuple(_from_plain(a, x, f"{where}[{i}]") for i, (a, x) in enumerate(zip(args, v)))
    if origin is typing.Literal:
        if v not in args:
            raise ConfigError(f"{where}: {v!r} is not one of {', '.join(map(repr, args))}")
        return v
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if tp in (int, float, str, bool) and not isinstance(v, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(v).__name__} {v!r}")
    if tp is int and isinstance(v, bool):
        raise ConfigError(f"{where}: expected int, got bool")
    return v
