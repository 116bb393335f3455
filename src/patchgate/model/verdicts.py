"""One verdict in every output of a run: gate.json's verdict follows from its own checks, and run-manifest.json
and junit.xml say the same.

``patchgate gate`` and ``patchgate verify`` read gate.json, a file anyone with access to the folder can rewrite;
a verdict that does not follow from the checks beside it, or that another output contradicts, is refused
(docs/evidence.md, "One verdict everywhere").
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from patchgate.evidence.gate import EXIT_CODES, Check, decide

CHECK_FIELDS = ("vm", "area", "invariant", "status")


def recomputed_verdict(gate: dict[str, Any]) -> str:
    """The verdict gate.json's checks give (patchgate.evidence.gate.decide), ignoring the verdict written beside them."""
    checks = [Check(**{k: entry[k] for k in CHECK_FIELDS}, step=entry.get("step")) for entry in gate["checks"]]
    return decide(checks)[0]


def gate_problems(gate: dict[str, Any]) -> list[str]:
    """What contradicts itself inside gate.json. A run may end more cautiously than its checks (interrupted, or
    pytest failing: inconclusive), never less."""
    recorded = gate.get("verdict")
    try:
        recomputed = recomputed_verdict(gate)
    except (KeyError, TypeError) as exc:
        return [f"gate.json: checks unreadable ({exc.__class__.__name__}: {exc})"]
    problems = []
    if recorded != recomputed and recorded != "inconclusive":
        problems.append(f"gate.json: verdict '{recorded}' does not follow from its checks, which give "
                        f"'{recomputed}'")
    if recorded in EXIT_CODES and gate.get("exit_code") != EXIT_CODES[recorded]:
        problems.append(f"gate.json: exit_code {gate.get('exit_code')} does not match verdict '{recorded}' "
                        f"(exit {EXIT_CODES[recorded]})")
    return problems


def junit_verdicts(path: Path) -> set[str]:
    """The patchgate.verdict properties of junit.xml (one per test suite)."""
    root = ET.parse(path).getroot()
    return {prop.get("value", "") for prop in root.iter("property") if prop.get("name") == "patchgate.verdict"}


def run_problems(out_dir: Path, gate: dict[str, Any]) -> list[str]:
    """gate.json's own contradictions, and every other output whose verdict differs from it."""
    problems = gate_problems(gate)
    recorded = gate.get("verdict")
    manifest = out_dir / "run-manifest.json"
    if manifest.is_file():
        try:
            other = json.loads(manifest.read_text(encoding="utf-8")).get("verdict")
        except ValueError as exc:
            problems.append(f"run-manifest.json: not JSON ({exc})")
        else:
            if other != recorded:
                problems.append(f"run-manifest.json: verdict '{other}', gate.json says '{recorded}'")
    junit = out_dir / "junit.xml"
    if junit.is_file():
        try:
            others = junit_verdicts(junit)
        except ET.ParseError as exc:
            problems.append(f"junit.xml: not XML ({exc})")
        else:
            if others and others != {recorded}:
                problems.append(f"junit.xml: patchgate.verdict {', '.join(sorted(others))}, gate.json says "
                                f"'{recorded}'")
    return problems
