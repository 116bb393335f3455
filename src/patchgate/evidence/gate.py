"""The verdict: any broken check (lab trouble) makes it inconclusive; otherwise any failed check blocks.

A run that checked nothing is inconclusive too: silence must never approve an update.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from patchgate.atomic import atomic_write
from patchgate.errors import EXIT_APPROVE, EXIT_BLOCK, EXIT_INCONCLUSIVE
from patchgate.secrets.redact import redactor

Status = Literal["passed", "failed", "broken", "skipped", "waived"]
Verdict = Literal["approve", "block", "inconclusive"]

EXIT_CODES: dict[str, int] = {"approve": EXIT_APPROVE, "block": EXIT_BLOCK, "inconclusive": EXIT_INCONCLUSIVE}
GATE_SCHEMA = "patchgate.evidence.gate/1"


@dataclass
class Check:
    vm: str
    area: str
    invariant: str
    status: Status
    message: str = ""
    role: str = ""
    nodeid: str = ""
    duration_s: float = 0.0
    step: str | None = None  # the lifecycle step that broke, for lab trouble
    waiver: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["message"] = redactor.redact(self.message)
        return {k: v for k, v in data.items() if v not in (None, "") or k in ("message",)}


def decide(checks: list[Check]) -> tuple[Verdict, str]:
    """Return the verdict and a one-line reason."""
    broken = [c for c in checks if c.status == "broken"]
    failed = [c for c in checks if c.status == "failed"]
    ran = [c for c in checks if c.status in ("passed", "failed", "waived")]
    if broken:
        first = broken[0]
        where = f" at step {first.step}" if first.step else ""
        return "inconclusive", f"{len(broken)} check(s) broken by lab trouble (first: {first.vm}{where})"
    if not ran:
        return "inconclusive", "no invariant was checked"
    if failed:
        names = sorted({f"{c.invariant} on {c.vm}" for c in failed})
        return "block", f"{len(failed)} invariant(s) failed: " + ", ".join(names[:5]) + (
            " ..." if len(names) > 5 else "")
    waived = [c for c in checks if c.status == "waived"]
    suffix = f" ({len(waived)} waived failure(s))" if waived else ""
    return "approve", f"all {len(ran)} checks passed{suffix}"


@dataclass
class GateReport:
    verdict: Verdict
    reason: str
    candidate: dict[str, Any]
    lab: dict[str, Any]
    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    checks: list[Check]
    vms: list[dict[str, Any]] = field(default_factory=list)
    remoting: dict[str, Any] = field(default_factory=dict)
    cert_validation: dict[str, bool] = field(default_factory=dict)
    waivers: list[dict[str, Any]] = field(default_factory=list)
    waivers_expired: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)  # src/patchgate_pytest/selection.py: what the run checked
    interrupted: bool = False
    patchgate_version: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for check in self.checks:
            counts[check.status] = counts.get(check.status, 0) + 1
        return {
            "schema": GATE_SCHEMA,
            "verdict": self.verdict,
            "reason": redactor.redact(self.reason),
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "run_id": self.run_id,
            "candidate": self.candidate,
            "lab": self.lab,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 3),
            "remoting": self.remoting,
            "cert_validation": self.cert_validation,
            "counts": counts,
            "checks": [c.to_dict() for c in self.checks],
            "waivers_applied": self.waivers,
            "waivers_expired": self.waivers_expired,
            "selection": self.selection,
            "partial": bool(self.selection.get("partial")),
            "vms": self.vms,
            "patchgate_version": self.patchgate_version,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, default=str)
        atomic_write(path, redactor.redact(text) + "\n")


def read_gate(path: Path) -> dict[str, Any]:
    """Read an existing gate.json (for ``patchgate gate DIR``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("verdict") not in EXIT_CODES:
        raise ValueError(f"{path}: 'verdict' must be one of approve, block, inconclusive")
    return data
