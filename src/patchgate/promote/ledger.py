"""The local ledger of promotions: ``<state dir>/promotions.jsonl``, one JSON line per promotion (docs/rings.md).

The production WSUS's approvals are the truth (`promote --status` and the soak check read them); the ledger says
which run and record each promotion came from, across runs, and is what `--status` shows when a server cannot be
reached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from patchgate.paths import state_dir

LEDGER = "promotions.jsonl"


def ledger_path() -> Path:
    return state_dir() / LEDGER


def append(entry: dict[str, Any]) -> None:
    """One whole line per promotion (O_APPEND: concurrent promoters never interleave within a line)."""
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(ledger_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def entries(kb: str) -> list[dict[str, Any]]:
    """The ledger's promotions of ``kb``, oldest first; unreadable lines are skipped."""
    path = ledger_path()
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and str(entry.get("kb", "")).upper() == kb.upper():
            found.append(entry)
    return found
