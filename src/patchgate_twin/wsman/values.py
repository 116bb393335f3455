"""psrpcore's deserialised objects -> plain Python, so the twin's ScriptHost never sees CLIXML types.

Parameters and pipeline input arrive as psrpcore types (PSString is a str, PSInt an int, hashtables a
PSDict, custom objects a PSObject with note properties). The twin's model works on str/int/bool/list/dict.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from psrpcore.types import PSObject


def to_python(value: Any, _depth: int = 0) -> Any:
    if _depth > 32:  # a cyclic or absurdly deep object: keep its text
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (dt.datetime, dt.timedelta, uuid.UUID)):
        return value
    if isinstance(value, dict):
        return {str(to_python(k, _depth + 1)): to_python(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v, _depth + 1) for v in value]
    if isinstance(value, PSObject):
        meta = value.PSObject
        props = list(meta.adapted_properties) + list(meta.extended_properties)
        if props:
            return {p.name: to_python(value[p.name], _depth + 1) for p in props}
        return str(value)
    return str(value)


def to_wire(value: Any) -> Any:
    """Output objects the twin returns: strings and simple values pass through; anything else as text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return str(value)
