"""Typed dataclass configs mapped onto argparse flags and written to run directories as JSON.

Kept in ``sim`` because it is the bottom layer every trainer and tool can import (DESIGN.md:
dependencies flow one way). Only flat fields of simple types become flags; nested configs are
left to code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SIMPLE = (int, float, str, bool)


def _field_type(cls: type, field: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints.get(field.name, field.type)


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add ``--field-name`` flags for each simple field of dataclass ``cls`` (default: None = keep)."""
    for field in dataclasses.fields(cls):
        typ = _field_type(cls, field)
        origin = typing.get_origin(typ)
        if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            typ = args[0] if len(args) == 1 else str
        flag = "--" + prefix + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else None
        if default is None and field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        if typ is bool:
            parser.add_argument(flag, dest=prefix + field.name, default=None,
                                action=argparse.BooleanOptionalAction,
                                help=f"{help_text} (default: {default})")
        elif typ in _SIMPLE:
            parser.add_argument(flag, dest=prefix + field.name, type=typ, default=None,
                                help=f"{help_text} (default: {default})")


def from_args(cls: type[T], args: argparse.Namespace, prefix: str = "", **overrides: Any) -> T:
    """Build ``cls`` from defaults, then flags that were given, then explicit overrides."""
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, prefix + field.name, None)
        if value is not None:
            kwargs[field.name] = value
    kwargs.update(overrides)
    return cls(**kwargs)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, tuples and numpy scalars to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically: a crash never leaves half a file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
