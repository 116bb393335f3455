"""Turn pydantic's ValidationError into one ConfigError that names file, field and line."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from patchgate.config.located import FieldProblem
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


def _data_location(loc: tuple[str | int, ...], data: object) -> tuple[str | int, ...]:
    """pydantic inserts union tags and validator names into ``loc``; keep only the parts that are keys or
    indexes of the data (plus a final missing key, which is what "Field required" points at)."""
    out: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif index == len(loc) - 1 and isinstance(current, dict):
            out.append(part)  # a required key that is absent
    return tuple(out)


def validate_document(model: type[ModelT], doc: YamlDocument, *, context: dict | None = None) -> ModelT:
    """Validate ``doc`` into ``model``; the first error becomes a ConfigError."""
    try:
        return model.model_validate(doc.data, context=context or {})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(first.get("loc", ()))
        problem = (first.get("ctx") or {}).get("error")
        if isinstance(problem, FieldProblem):  # a model-level check that knows which field is wrong
            loc = loc + problem.loc
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc += (str((first.get("ctx") or {}).get("discriminator", "")).strip("'\""),)
        loc = _data_location(loc, doc.data)
        message = str(first.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        value = first.get("input")
        if first.get("type") == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
            key = str(loc[-1]) if loc else "value"
            message = (f"YAML read the unquoted value as a number ({value!r}), which can lose digits: put it in "
                       f"quotes, e.g. {key}: \"...\" exactly as written")
        extra = len(exc.errors()) - 1
        if extra:
            message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
        raise ConfigError(message, file=str(doc.path), field=_field_name(loc),
                          line=doc.line_of(loc)) from None
