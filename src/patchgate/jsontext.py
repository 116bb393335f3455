"""Indented JSON text for evidence people read (gate.json, posture attachments), written fast.

``json.dumps(indent=2)`` runs Python's pure-Python encoder; with 32 VMs the posture attachments alone took most
of a second at the end of a run. orjson writes the same layout (two-space indent, ``": "``) natively.
"""

from __future__ import annotations

from typing import Any

import orjson


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON; anything JSON has no type for is written as its ``str()``."""
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode("utf-8")
