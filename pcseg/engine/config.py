"""Flat YAML recipes loaded into dataclasses, with ``key=value`` command-line overrides.

A recipe is one flat mapping; every key must be a field of the recipe's dataclass (a typo is an
error naming the key), and values are checked against the field's type.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from ..errors import ConfigError

T = TypeVar("T")


def _coerce(cls: type, name: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against the type ``hint`` (int, float, str, bool, Optional[...], list[...])."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(cls, name, value, arg, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {name}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return [_coerce(cls, name, v, item, source) for v in value]
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ConfigError(f"{source}: {name}: expected {hint.__name__}, got {value!r}")


def require(config: Any, ok: bool, key: str, what: str) -> None:
    """A recipe's value check: ValueError naming ``key`` and its value when ``ok`` is false."""
    if not ok:
        raise ValueError(f"{key}: {what}, got {getattr(config, key)!r}")


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.01", "name=run1"]`` -> ``{"lr": 0.01, "name": "run1"}`` (values parsed as YAML)."""
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem}); "
                              "a list is written [32,64], a string with special characters in quotes") from None
    return out


OVERRIDES = "command-line override"


def unknown_keys_message(unknown: Sequence[str], valid: Sequence[str]) -> str:
    """``unknown key 'max_minute' (did you mean 'max_minutes'?)``, one clause per key."""
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
        parts.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "; ".join(parts)


def build_config(cls: type[T], values: dict[str, Any], source: str = "config",
                 override_keys: Sequence[str] = ()) -> T:
    """Instantiate the dataclass ``cls`` from a flat mapping, rejecting unknown keys. Errors about a
    key in ``override_keys`` blame the command line, the others ``source``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    overridden = set(override_keys)

    def where(key: str) -> str:
        return OVERRIDES if key in overridden else source

    unknown = [k for k in values if k not in fields]
    if unknown:
        by_origin: dict[str, list[str]] = {}
        for key in unknown:
            by_origin.setdefault(where(key), []).append(key)
        raise ConfigError("; ".join(f"{origin}: {unknown_keys_message(keys, fields)}" for origin, keys in by_origin.items())
                          + f" (the keys are the fields of {cls.__module__}.{cls.__name__})")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(cls, k, v, hints[k], where(k)) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        key = str(e).partition(":")[0].strip()
        raise ConfigError(f"{where(key)}: {e}") from None


def prediction_recipe(cls: type[T], saved: dict[str, Any], overrides: Sequence[str], allowed: Sequence[str],
                      source: str) -> tuple[T, dict[str, Any]]:
    """A checkpoint's recipe ``saved`` with the prediction-time ``overrides`` applied, and those overrides.
    Only the keys in ``allowed`` may change: any other key was fixed by training and is an error."""
    given = parse_overrides(overrides)
    fields = {f.name for f in dataclasses.fields(cls)}
    fixed = sorted(k for k in given if k in fields and k not in allowed)
    if fixed:
        raise ConfigError(f"{OVERRIDES}: {', '.join(fixed)}: set by training and fixed in the checkpoint; "
                          f"a prediction may change only {', '.join(allowed)}")
    return build_config(cls, {**saved, **given}, source, list(given)), given


def read_values(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], str, list[str]]:
    """The flat mapping of a YAML recipe with ``key=value`` overrides applied, its source name and
    the keys the overrides set."""
    values: dict[str, Any] = {}
    source = OVERRIDES
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a flat mapping of key: value, got {type(loaded).__name__}")
        values.update(loaded or {})
    given = parse_overrides(overrides)
    values.update(given)
    return values, source, list(given)


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> T:
    """Load a flat YAML recipe into ``cls`` and apply ``key=value`` overrides."""
    values, source, given = read_values(path, overrides)
    return build_config(cls, values, source, given)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
