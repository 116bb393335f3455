"""A validation problem a model-level check can pin on one field of the file (validate_document names its line)."""

from __future__ import annotations


class FieldProblem(ValueError):
    """Raised by a model validator about the field at ``loc`` (keys and list indexes, as in the YAML)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


__all__ = ["FieldProblem"]
