"""Dotted paths into the host model (``hotpatch.hotpatch_table_size``, ``services.WinRM.start_mode``): what a
``set`` effect names, checked against the model's types at load time."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from patchgate_twin import specs
from patchgate_twin.model import WindowsHost


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def path_type(path: str) -> Any:
    """The model type at dotted ``path`` under WindowsHost; ValueError names the bad segment."""
    tp: Any = WindowsHost
    for segment in path.split("."):
        inner = _unwrap_optional(tp)
        origin = typing.get_origin(inner)
        if dataclasses.is_dataclass(inner):
            fields = specs.field_types(inner)
            if segment not in fields:
                raise ValueError(f"'{segment}' is not a field of {inner.__name__} (path '{path}'; fields: "
                                 f"{', '.join(fields)})")
            tp = fields[segment]
        elif origin is dict:
            tp = typing.get_args(inner)[1]
        elif origin is list:
            if not segment.isdigit():
                raise ValueError(f"'{segment}' must be a list index in path '{path}'")
            tp = typing.get_args(inner)[0]
        else:
            raise ValueError(f"path '{path}' goes below a plain value at '{segment}'")
    return tp


def set_path(host: WindowsHost, path: str, value: Any) -> None:
    """Assign ``value`` (validated against the model type) at dotted ``path``."""
    typed = specs.value_adapter(path_type(path)).validate_python(value)
    *parents, last = path.split(".")
    target: Any = host
    for segment in parents:
        if isinstance(target, dict):
            target = target[segment]
        elif isinstance(target, list):
            target = target[int(segment)]
        else:
            target = getattr(target, segment)
        if target is None:
            raise KeyError(f"cannot set '{path}': '{segment}' is not present on this host")
    if isinstance(target, dict):
        target[last] = typed
    elif isinstance(target, list):
        target[int(last)] = typed
    else:
        setattr(target, last, typed)
