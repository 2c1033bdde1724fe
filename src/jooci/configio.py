"""Strict conversion between (nested, frozen) config dataclasses and plain dicts / YAML.

Every config in jooci is a dataclass next to the module it configures. This module is the one
place that turns them into JSON/YAML-able dicts and back, and it refuses what a typo would
otherwise hide: an unknown key or a value of the wrong type raises :class:`ConfigError` naming the
dotted key (``optim.lr: expected float, got 'fast'``). Command-line overrides are ``key=value``
with dotted keys, the value parsed as YAML (``optim.lr=3e-4``, ``model.content.layers=4``,
``data.crop=[32000,64000]``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from jooci.fileio import atomic_write_text

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that does not match its dataclass; the message names the dotted key."""


def to_dict(cfg: Any) -> Any:
    """A dataclass (nested) as plain dicts, lists, str/int/float/bool/None."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(x) for x in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys take their defaults.

    Raises:
        ConfigError: unknown key, wrong type, or a required key missing, naming the dotted key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or '<root>'}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names, key=str)  # YAML keys may be ints, None, ... besides strings
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigError(f"unknown key {_join(where, unknown[0])!r} (known keys of {where or cls.__name__}: {known})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], _join(where, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {_join(where, f.name)!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ArithmeticError) as e:  # __post_init__ validation (scale=0: a modulo by zero)
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def replace(cfg: T, overrides: dict[str, Any] | list[str]) -> T:
    """A copy of ``cfg`` with dotted-key overrides applied (``["optim.lr=1e-3"]`` or a dict)."""
    d = to_dict(cfg)
    items = parse_overrides(overrides) if isinstance(overrides, list) else overrides
    for key, value in items.items():
        set_dotted(d, key, value)
    return from_dict(type(cfg), d)


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1,2]"]`` -> ``{"a.b": 3, "c": [1, 2]}`` (values parsed as YAML)."""
    out = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {arg!r} is not key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as e:
            reason = getattr(e, "problem", None) or e  # a ReaderError (a control character) has no .problem
            raise ConfigError(f"override {arg!r}: value is not valid YAML ({reason})") from None
    return out


def load_yaml(cls: type[T], path: str | os.PathLike, overrides: list[str] | None = None) -> T:
    """Read a YAML file into ``cls``, then apply ``key=value`` overrides. Errors name the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, value in parse_overrides(overrides or []).items():
            set_dotted(data, key, value)
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: {not_utf8_reason(e)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a usable config (nested too deeply)") from None


def not_utf8_reason(e: UnicodeDecodeError) -> str:
    """A config file that is not UTF-8 text, in words (for the ConfigError that names the file)."""
    return f"not UTF-8 text ({e.reason} at byte {e.start})"


def save_yaml(cfg: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written atomically: other ranks check this file before reusing a run.
    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def merge(base: dict, top: dict) -> dict:
    """``base`` updated by ``top``, recursively for nested mappings (neither is modified)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_dotted(d: dict, key: str, value: Any) -> None:
    """``d["a"]["b"] = value`` for ``key == "a.b"``, creating sections as needed."""
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
        d = nxt
    d[parts[-1]] = value


def flatten_dotted(d: Any, prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`set_dotted`: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten_dotted(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))) if args else tuple(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (a,) = get_args(tp) or (Any,)
        return [_convert(a, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        ka, va = get_args(tp) or (Any, Any)
        return {_convert(ka, k, where): _convert(va, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"{where}: unsupported config type {tp!r}")
