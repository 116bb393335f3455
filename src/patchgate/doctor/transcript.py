"""Transcripts: what a VM's probes and preflight printed, kept as files so a real lab's answers become a
regression test (docs/probes.md, "Contributing a transcript").

A transcript folder holds ``transcript.json`` (format, patchgate version, source, role, build, and what this
patchgate version read from the files: each area's posture, the facts, the doctor's conclusions) plus one file
per probe area (``<area>.json``, the probe's raw output) and ``preflight.json``. Replaying parses the raw files
again and compares with what was read at capture time: a renamed property, a changed value kind or a parser that
reads the same text differently fails the replay with the area and the difference.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from patchgate import __version__
from patchgate.doctor.checks import assumption_checks
from patchgate.doctor.facts import parse_facts
from patchgate.model.posture import AREAS, Posture
from patchgate.probes.parsers import parse_probe
from patchgate.secrets.redact import redactor

FORMAT = "patchgate-transcript/1"
META = "transcript.json"
PREFLIGHT = "preflight.json"
HOST_PLACEHOLDER = "VM-HOST"


def _plain(value: Any) -> Any:
    """JSON types only, as a round trip through the file would give them."""
    return json.loads(json.dumps(value, default=str))


def redact_names(text: str, names: list[str]) -> str:
    """Secrets out (always), then the VM's names replaced by a placeholder, longest first."""
    text = redactor.redact(text)
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        text = re.sub(re.escape(name), HOST_PLACEHOLDER, text, flags=re.IGNORECASE)
    return text


def readings(raw: dict[str, str], preflight: str | None, role: str) -> dict[str, Any]:
    """What patchgate reads from the raw files: each area's posture, the facts, the doctor's conclusions."""
    areas = {area: parse_probe(area, text) for area, text in raw.items()}
    posture = Posture(captured_at=dt.datetime.now(dt.UTC), **areas)
    conclusions = [[c.name, c.status] for c in assumption_checks(posture, role)]
    facts = dataclasses.asdict(parse_facts(preflight)) if preflight is not None else None
    return _plain({"posture": {area: value.to_dict() for area, value in areas.items()}, "preflight": facts,
                   "conclusions": conclusions})


def write_transcript(out: Path, *, raw: dict[str, str], preflight: str | None, role: str, source: str,
                     names: list[str], keep_names: bool) -> Path:
    """Write one transcript folder; the raw texts are redacted before anything is read from them."""
    out.mkdir(parents=True, exist_ok=True)

    def clean(text: str) -> str:
        return redactor.redact(text) if keep_names else redact_names(text, names)

    raw = {area: clean(text) for area, text in raw.items()}
    preflight = clean(preflight) if preflight is not None else None
    for area, text in raw.items():
        (out / f"{area}.json").write_text(text + "\n", encoding="utf-8")
    if preflight is not None:
        (out / PREFLIGHT).write_text(preflight + "\n", encoding="utf-8")
    read = readings(raw, preflight, role)
    updates = read["posture"].get("updates") or {}
    meta = {"format": FORMAT, "patchgate": __version__, "source": source, "role": role,
            "build": f"{updates.get('current_build')}.{updates.get('ubr')}" if updates else None,
            "captured_at": dt.datetime.now(dt.UTC).isoformat(), "names_kept": keep_names,
            "areas": sorted(raw), "read": read}
    (out / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return out


def _differences(expected: Any, actual: Any, where: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                out.append(f"{where}.{key}: {'missing now' if key not in actual else 'new'}")
            else:
                out += _differences(expected[key], actual[key], f"{where}.{key}")
        return out
    return [] if expected == actual else [f"{where}: recorded {expected!r:.80}, read now {actual!r:.80}"]


def _raw(folder: Path, meta: dict[str, Any]) -> dict[str, str]:
    return {area: (folder / f"{area}.json").read_text(encoding="utf-8").strip() for area in meta["areas"]}


def posture_of(folder: Path) -> tuple[Posture, str]:
    """The posture a transcript's raw files give this patchgate version, and the VM's role (for the suites)."""
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    areas = {area: parse_probe(area, text) for area, text in _raw(folder, meta).items()}
    return Posture(captured_at=dt.datetime.now(dt.UTC), **areas), meta["role"]


def replay(folder: Path) -> list[str]:
    """Parse a transcript's raw files again; each difference from what was read at capture time, named."""
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        return [f"{folder / META}: format {meta.get('format')!r}, expected {FORMAT!r}"]
    unknown = [area for area in meta["areas"] if area not in AREAS]
    if unknown:
        return [f"{folder / META}: unknown areas {unknown}"]
    raw = _raw(folder, meta)
    preflight_file = folder / PREFLIGHT
    preflight = preflight_file.read_text(encoding="utf-8").strip() if preflight_file.is_file() else None
    actual = readings(raw, preflight, meta["role"])
    return _differences(meta["read"], actual, folder.name)
