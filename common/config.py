"""Typed dataclass configs mapped onto argparse flags, and back.

Each simple field (int, float, str, bool, or ``X | None`` of those) becomes ``--field-name``. Field
metadata says the rest:

- ``help``: the flag's help; the default is appended unless it is empty (``""`` or ``None``);
- ``required``: the flag must be given (a path the run cannot do without);
- ``choices``: the accepted values;
- ``aliases``: older spellings, accepted but hidden from ``--help`` (kept one release for scripts);
- ``flag: False``: not a flag (set by code or derived from the data).

Flags default to ``None`` ("not given"), so ``from_args`` layers dataclass defaults, then the flags
that were given, then explicit overrides.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable, TypeVar

T = TypeVar("T")

_SIMPLE = (int, float, str, bool)


def _flag_type(cls: type, field: dataclasses.Field) -> Any:
    typ = typing.get_type_hints(cls).get(field.name, field.type)
    origin = typing.get_origin(typ)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        typ = args[0] if len(args) == 1 else str
    return typ


def field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _float_or_int(text: str) -> float:
    return float(text)


def add_dataclass_args(parser: argparse.ArgumentParser | Any, cls: type, prefix: str = "",
                       skip: Iterable[str] = ()) -> None:
    """Add a ``--field-name`` flag for each simple field of dataclass ``cls`` (see module doc)."""
    skip = set(skip)
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if field.name in skip or meta.get("flag", True) is False:
            continue
        typ = _flag_type(cls, field)
        if typ not in _SIMPLE:
            continue
        flag = "--" + prefix + field.name.replace("_", "-")
        dest = prefix + field.name
        default = field_default(field)
        help_text = meta.get("help", "")
        if meta.get("required"):
            help_text += " (required)"
        elif default not in ("", None):
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": help_text.strip()}
        if typ is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            # an int where a float is declared is fine ("--lr 1" means 1.0)
            kwargs["type"] = _float_or_int if typ is float else typ
            if "choices" in meta:
                kwargs["choices"] = list(meta["choices"])
            if meta.get("required"):
                kwargs["required"] = True
            if "metavar" in meta:
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag, **kwargs)
        for alias in meta.get("aliases", ()):
            alias_kwargs = {k: v for k, v in kwargs.items() if k != "required"}
            alias_kwargs["help"] = argparse.SUPPRESS
            parser.add_argument(alias, **alias_kwargs)


def from_args(cls: type[T], args: argparse.Namespace, prefix: str = "", **overrides: Any) -> T:
    """Build ``cls`` from its defaults, then the flags that were given, then ``overrides``."""
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, prefix + field.name, None)
        if value is not None:
            kwargs[field.name] = value
    kwargs.update(overrides)
    return cls(**kwargs)
