"""KB ids: one spelling everywhere (``KB5070893``), so a lab file, a candidate, the calendar and a guest's hotfix
list compare equal however a person typed them."""

from __future__ import annotations

import re

KB_ID = re.compile(r"KB\d{6,8}")


def kb_id(value: str, *, bare_number: bool = False) -> str:
    """``kb5070893`` or `` KB5070893 `` -> ``KB5070893``, and ``5070893`` too where a bare number is a documented
    short form (``--candidate 5070881``, ``policy.allow.kbs``); ValueError for anything else (pydantic reports it
    on the field). Files that describe an update (candidates, the calendar, catalogues) spell the prefix."""
    norm = value.strip().upper()
    if bare_number and norm.isdigit():
        norm = f"KB{norm}"
    if not KB_ID.fullmatch(norm):
        raise ValueError(f"'{value}' is not a KB id such as KB5070893")
    return norm


def is_kb_id(value: str, *, bare_number: bool = False) -> bool:
    """Whether ``value`` is a KB id in a spelling :func:`kb_id` accepts."""
    try:
        kb_id(value, bare_number=bare_number)
    except ValueError:
        return False
    return True
