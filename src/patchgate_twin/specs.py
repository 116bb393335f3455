"""Pydantic validators generated from the twin's model dataclasses.

Images and behaviours are YAML written by people; a typo in a field name or a wrong value must fail at load time
with file, field and line (ConfigError), not later inside a probe renderer. Rather than keep a second, hand-written
schema in step with ``patchgate_twin.model``, the schema is derived from the dataclasses themselves: every field a
dataclass gains is accepted in YAML at once, and unknown keys are rejected.

``full(cls)`` validates a complete object (required fields required); ``partial(cls)`` validates a patch (every
field optional, only the keys given are applied).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from patchgate.errors import ConfigError


def _translate(tp: Any, *, patch: bool = False) -> Any:
    """Replace dataclass types inside ``tp`` with their generated pydantic models.

    With ``patch``, nested dataclasses become patch models too and mapping values may be ``None`` (an image that
    extends another removes an inherited entry by setting it to null).
    """
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return partial(tp) if patch else full(tp)
    origin = get_origin(tp)
    if origin is None:
        return tp
    args = get_args(tp)
    if origin is typing.Literal:
        return tp
    if origin in (types.UnionType, typing.Union):
        return typing.Union[tuple(_translate(a, patch=patch) for a in args)]  # type: ignore[return-value]  # noqa: UP007
    if origin is list:
        return list[_translate(args[0], patch=patch)]  # type: ignore[misc]
    if origin is dict:
        value = _translate(args[1], patch=patch)
        return dict[args[0], value | None if patch else value]  # type: ignore[misc]
    return tp


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (the model uses ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


@functools.cache
def full(cls: type) -> type[BaseModel]:
    """A strict pydantic model mirroring dataclass ``cls`` (defaults kept, unknown keys rejected)."""
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = _translate(field_types(cls)[f.name])
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (tp, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (tp, None)  # filled by the dataclass's own factory on construction
        else:
            fields[f.name] = (tp, ...)
    return create_model(f"{cls.__name__}Spec", __config__=ConfigDict(extra="forbid"), **fields)


@functools.cache
def partial(cls: type) -> type[BaseModel]:
    """A strict pydantic model for a patch of ``cls``: every field optional, nested objects patches too."""
    fields = {name: (_translate(tp, patch=True) | None, None) for name, tp in field_types(cls).items()}
    return create_model(f"{cls.__name__}Patch", __config__=ConfigDict(extra="forbid"), **fields)


@functools.cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def build(cls: type, data: dict[str, Any]) -> Any:
    """Construct dataclass ``cls`` from already-validated plain data (nested dataclasses included)."""
    return _adapter(cls).validate_python(data)


def dump(spec: BaseModel) -> dict[str, Any]:
    """Only the keys the YAML author wrote (so dataclass defaults and factories apply to the rest)."""
    return spec.model_dump(exclude_unset=True)


def value_adapter(tp: Any) -> TypeAdapter[Any]:
    """Validate a single value against a model field type (used by ``set`` effects)."""
    return TypeAdapter(tp)


# ---------------------------------------------------------------- errors that name file, field and line


def field_name(loc: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        parts.append(f"[{item}]" if isinstance(item, int) else ("." if parts else "") + str(item))
    return "".join(parts) or "<document>"


def data_location(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """Keep only the parts of a pydantic ``loc`` that are keys or indexes of ``data`` (pydantic adds union tags and
    model names), plus a final absent key (what "Field required" points at)."""
    out: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current or isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif index == len(loc) - 1 and isinstance(current, dict):
            out.append(part)
    return tuple(out)


def config_error(exc: ValidationError, *, file: str, lines: Callable[[tuple[str | int, ...]], int | None],
                 data: Any, prefix: tuple[str | int, ...] = (), what: str = "") -> ConfigError:
    """The first pydantic error as a ConfigError at its YAML line; ``data`` is what was validated."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = prefix + data_location(tuple(first.get("loc", ())), data)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(f"{what}{message}", file=file, field=field_name(loc), line=lines(loc))
