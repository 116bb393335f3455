"""Turn pydantic's ValidationError into one ConfigError that names file, field and line."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from patchgate.config.yamlfile import YamlDocument
from patchgate.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def _field_name(loc: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<document>"


def _data_location(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """pydantic inserts tag names for tagged unions; drop the ones that are not data keys."""
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def validate_document(model: type[ModelT], doc: YamlDocument, *, context: dict | None = None) -> ModelT:
    """Validate ``doc`` into ``model``; the first error becomes a ConfigError."""
    try:
        return model.model_validate(doc.data, context=context or {})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = _data_location(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        extra = len(exc.errors()) - 1
        if extra:
            message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
        raise ConfigError(message, file=str(doc.path), field=_field_name(loc),
                          line=doc.line_of(loc)) from None
