"""Compose a whole capture into ONE PowerShell script, and split its envelope back into postures.

One pipeline per capture, not one per check: the composed script runs each probe in its own script block inside
try/catch and prints one JSON envelope, so a probe that throws is reported for its area while the others still
answer::

    {"patchgate":"capture/1","computerName":"LAB-01","capturedAt":"2025-10-24T08:00:00.0000000Z",
     "probes":[{"area":"hotpatch","ok":true,"output":"<probe json text>","error":null}, ...]}

Each probe is embedded between ``#region patchgate-probe:<area>`` and ``#endregion`` markers; the twin finds its
areas by those markers. Parameters travel as PowerShell parameters (``-Since``), never interpolated into the text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from patchgate.errors import ProbeError
from patchgate.model.posture import AREAS, Posture
from patchgate.probes import probe_text
from patchgate.probes.parsers import parse_datetime, parse_probe
from patchgate.remoting.base import Script, ScriptResult

ENVELOPE_TAG = "capture/1"
OP_LINE = "# patchgate-op: capture"
REGION = re.compile(r"^#region patchgate-probe:(?P<area>[A-Za-z0-9_-]+)\s*$", re.MULTILINE)

# Composed-script parameters each probe receives (probe parameter -> capture parameter).
_PROBE_ARGS: dict[str, str] = {"events": "-Since $Since", "reboot": "-Since $Since"}


@dataclass(frozen=True)
class Capture:
    """A parsed capture: the posture, each probe's raw JSON text (evidence), and per-area failures."""

    posture: Posture
    raw: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _since_text(since: dt.datetime) -> str:
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware (UTC)")
    return since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The probes need a FullLanguage endpoint: JEA and ConstrainedLanguage sessions cannot run them, and would fail with
# an obscure error on the first .NET call. Say so plainly instead (docs/remoting.md).
LANGUAGE_CHECK = ("if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { throw \"patchgate needs a "
                  "FullLanguage PowerShell endpoint; this one runs $($ExecutionContext.SessionState.LanguageMode) "
                  "(JEA and ConstrainedLanguage endpoints are not supported: docs/remoting.md)\" }")


def compose_capture(areas: Iterable[str] = AREAS, since: dt.datetime | None = None) -> Script:
    """One script that runs the probes of ``areas`` (in the given order) and prints one JSON envelope."""
    chosen = list(dict.fromkeys(areas))
    unknown = [a for a in chosen if a not in AREAS]
    if unknown or not chosen:
        raise ValueError(f"unknown probe area(s) {unknown} (known: {', '.join(AREAS)})" if unknown
                         else "a capture needs at least one probe area")
    lines = [
        OP_LINE,
        "# Runs each patchgate probe in its own script block and prints ONE JSON envelope (capture/1).",
        "[CmdletBinding()]",
        "param([string]$Since)",
        "$ErrorActionPreference = 'Stop'",
        LANGUAGE_CHECK,
        "$__pgResults = New-Object -TypeName 'System.Collections.Generic.List[object]'",
    ]
    for area in chosen:
        body = probe_text(area).rstrip("\n")
        call = f"& $__pgProbe {_PROBE_ARGS.get(area, '')}".rstrip()
        lines += [
            f"#region patchgate-probe:{area}",
            "$__pgProbe = {",
            body,
            "}",
            "try {",
            f"    $__pgOut = @({call}) -join \"`n\"",
            (f"    $__pgResults.Add([pscustomobject]@{{ area = '{area}'; ok = $true; output = [string]$__pgOut; "
             "error = $null })"),
            "} catch {",
            (f"    $__pgResults.Add([pscustomobject]@{{ area = '{area}'; ok = $false; output = $null; "
             "error = \"$($_.Exception.GetType().FullName): $($_.Exception.Message)\" })"),
            "}",
            "#endregion",
        ]
    lines += [
        "$__pgEnvelope = [pscustomobject]@{",
        f"    patchgate   = '{ENVELOPE_TAG}'",
        "    computerName = $env:COMPUTERNAME",
        "    capturedAt  = (Get-Date).ToUniversalTime().ToString('o')",
        "    probes      = $__pgResults.ToArray()",
        "}",
        "ConvertTo-Json -InputObject $__pgEnvelope -Depth 4 -Compress",
    ]
    params: dict[str, Any] = {"Since": _since_text(since)} if since is not None else {}
    return Script(name="capture", body="\n".join(lines) + "\n", parameters=params)


def capture_areas(script_text: str) -> list[str]:
    """The probe areas a composed capture script runs, in order (from its region markers)."""
    return [m.group("area") for m in REGION.finditer(script_text)]


def _envelope_error(detail: str, area: str | None = None) -> ProbeError:
    where = f"probe '{area}'" if area else "capture envelope"
    return ProbeError(f"{where}: {detail}", step=f"probe:{area}" if area else "capture")


def _as_list(value: Any) -> Any:
    # 5.1 quirks: a collapsed one-element array, or {"value": [...], "Count": n}
    if isinstance(value, dict) and isinstance(value.get("value"), list) and set(value) <= {"value", "Count"}:
        return value["value"]
    if isinstance(value, dict):
        return [value]
    return value


def parse_capture(result: ScriptResult, *, vm: str | None = None) -> Capture:
    """Split a capture envelope and parse each probe. A malformed envelope or probe JSON raises ProbeError
    naming the area; a probe that reported failure is recorded in ``errors`` (its area stays None)."""
    text = result.text.strip().lstrip("\ufeff")
    if not text:
        detail = "; ".join(result.errors) if result.errors else "no output"
        raise _envelope_error(f"the capture printed nothing ({detail[:300]})").at(vm=vm)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _envelope_error(f"not JSON ({exc.msg} at column {exc.colno}): {text[:80]!r}").at(vm=vm) from None
    if not isinstance(doc, dict) or doc.get("patchgate") != ENVELOPE_TAG:
        raise _envelope_error(f"expected {{\"patchgate\":\"{ENVELOPE_TAG}\", ...}}, got {text[:80]!r}").at(vm=vm)
    probes = _as_list(doc.get("probes"))
    if not isinstance(probes, list):
        raise _envelope_error("field 'probes' is not an array").at(vm=vm)
    captured_at = parse_datetime(doc.get("capturedAt"))
    if captured_at is None:
        raise _envelope_error(f"field 'capturedAt' is not a date: {doc.get('capturedAt')!r}").at(vm=vm)

    areas: dict[str, Any] = {}
    raw: dict[str, str] = {}
    errors: dict[str, str] = {}
    for i, entry in enumerate(probes):
        if not isinstance(entry, dict) or not isinstance(entry.get("area"), str):
            raise _envelope_error(f"probes[{i}] has no 'area'").at(vm=vm)
        area = entry["area"]
        if area not in AREAS:
            raise _envelope_error("unknown area", area).at(vm=vm)
        if entry.get("ok") is True:
            output = entry.get("output")
            if not isinstance(output, str):
                raise _envelope_error("'output' is not the probe's JSON text", area).at(vm=vm)
            raw[area] = output
            try:
                areas[area] = parse_probe(area, output)
            except ProbeError as exc:
                raise exc.at(vm=vm)
        elif entry.get("ok") is False:
            errors[area] = str(entry.get("error") or "the probe failed without a message")
        else:
            raise _envelope_error(f"'ok' must be true or false, got {entry.get('ok')!r}", area).at(vm=vm)
    posture = Posture(captured_at=captured_at, vm=vm, computer_name=doc.get("computerName"), errors=errors,
                      **areas)
    return Capture(posture=posture, raw=raw, errors=errors)


def probe_hashes() -> dict[str, str]:
    """SHA-256 of every shipped probe script by file name, for the evidence manifest."""
    root = resources.files(__package__)
    out = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".ps1"):
            out[entry.name] = hashlib.sha256(entry.read_bytes()).hexdigest()
    return out
