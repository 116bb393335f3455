"""Finding the lab and candidate files a command names, without loading them.

Kept apart from :mod:`patchgate.config` (and its pydantic models) so ``patchgate validate`` can start the suites
while it validates the files itself: the two interpreters start up side by side instead of one after the other.
"""

from __future__ import annotations

import datetime as dt
import secrets as _random
from pathlib import Path

from patchgate.errors import ConfigError
from patchgate.model.kb import is_kb_id, kb_id



def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + _random.token_hex(3)


def resolve_lab(value: str) -> Path:
    """Accept a path or a bare lab name (``twin`` -> ``labs/twin.yaml``)."""
    return _resolve(value, folder="labs", what="lab")


def resolve_candidate(value: str) -> Path:
    """Accept a path or a KB id (``KB5070881`` -> ``candidates/KB5070881.yaml``)."""
    if is_kb_id(value, bare_number=True):
        value = kb_id(value, bare_number=True)
    return _resolve(value, folder="candidates", what="candidate")


def _search_roots() -> list[Path]:
    """Where short names are looked up: ``labs/`` and ``candidates/`` in the working directory."""
    return [Path.cwd()]


def _resolve(value: str, *, folder: str, what: str) -> Path:
    direct = Path(value)
    if direct.suffix in (".yaml", ".yml") or "/" in value or direct.is_file():
        if not direct.is_file():
            raise ConfigError(f"{what} file not found", file=value)
        return direct
    for root in _search_roots():
        for suffix in (".yaml", ".yml"):
            candidate = root / folder / f"{value}{suffix}"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for root in _search_roots() for p in (root / folder).glob("*.y*ml")})
    hint = f"; known: {', '.join(known)}" if known else ""
    raise ConfigError(f"unknown {what} '{value}' (no {folder}/{value}.yaml){hint}")


INPUTS_CHECKED_BY_PARENT = "PATCHGATE_INPUTS_CHECKED_BY_PARENT"  # set by `patchgate validate` for its child pytest
