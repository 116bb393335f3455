"""What a run folder must show before its KB may leave the lab: verified evidence (signed when the lab signs), an
approve verdict on the whole lab, packages that match their declared sha256, and a run young enough.

Each check raises PromotionRefused naming the reason; nothing here talks to production.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchgate.evidence.hashing import sha256_file
from patchgate.evidence.manifests import EVIDENCE_MANIFEST, RUN_MANIFEST, verify_dir
from patchgate.promote.refusal import PromotionRefused


@dataclass(frozen=True)
class ApprovedRun:
    """The facts of a run that passed every check, as the promotion record names them."""

    out_dir: Path
    run_id: str
    kb: str
    lab_name: str
    lab_file: str | None
    finished_at: dt.datetime
    gate_sha256: str
    evidence_manifest_sha256: str
    packages: list[dict[str, Any]]  # file, sha256 (the actual digest on the runner)
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dir": str(self.out_dir), "lab": self.lab_name, "kb": self.kb,
                "finished_at": self.finished_at.isoformat(), "gate_sha256": self.gate_sha256,
                "evidence_manifest_sha256": self.evidence_manifest_sha256, "signed": self.signed}


def _read(out_dir: Path, name: str) -> dict[str, Any]:
    try:
        data = json.loads((out_dir / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromotionRefused(f"no {name} (is it the output folder of a finished run?)", file=str(out_dir)) from None
    except (OSError, ValueError) as exc:
        raise PromotionRefused(f"{name} is unreadable ({exc.__class__.__name__})", file=str(out_dir)) from None
    if not isinstance(data, dict):
        raise PromotionRefused(f"{name} is not a JSON object", file=str(out_dir))
    return data


def check_run(out_dir: Path, *, max_age: dt.timedelta, now: dt.datetime, public_key: str | None = None,
              lab: str | None = None) -> ApprovedRun:
    """The run's facts, or PromotionRefused for the first thing that forbids a promotion."""
    shown = str(out_dir)
    if not out_dir.is_dir():
        raise PromotionRefused("not a folder", file=shown)
    gate = _read(out_dir, "gate.json")
    manifest = _read(out_dir, RUN_MANIFEST)
    _read(out_dir, EVIDENCE_MANIFEST)
    result = verify_dir(out_dir, public_key=public_key, lab=lab)
    if not result.ok:
        lines = result.lines()
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise PromotionRefused(f"`patchgate verify` fails: {lines[0]}{more}", file=shown)
    verdict = gate.get("verdict")
    if verdict != "approve":
        raise PromotionRefused(f"the run's verdict is {str(verdict).upper()}, not APPROVE: {gate.get('reason', '')}",
                               file=shown)
    if gate.get("partial"):
        narrowed = (gate.get("selection") or {}).get("narrowed_by") or "a narrowed selection"
        raise PromotionRefused(f"the run approved only part of the lab ({narrowed}); promote a full run",
                               file=shown)
    finished = _moment(gate.get("finished_at"), shown)
    if now - finished > max_age:
        raise PromotionRefused(f"the run finished at {finished.isoformat()}, older than --max-age "
                               f"{_span(max_age)}; validate again", file=shown)
    packages = []
    for package in (manifest.get("candidate") or {}).get("packages") or []:
        if package.get("matches") is not True:
            raise PromotionRefused(f"package {package.get('file')} did not match its declared sha256 on the runner",
                                   file=shown)
        packages.append({"file": package.get("file"), "sha256": str(package.get("actual_sha256")).lower()})
    if not packages:
        raise PromotionRefused("the run recorded no candidate package and sha256 to compare with WSUS", file=shown)
    kb = str((gate.get("candidate") or {}).get("kb") or "").upper()
    if not kb:
        raise PromotionRefused("gate.json names no candidate KB", file=shown)
    return ApprovedRun(out_dir=out_dir.resolve(), run_id=str(manifest.get("run_id") or gate.get("run_id")), kb=kb,
                       lab_name=str((manifest.get("lab") or {}).get("name") or gate.get("lab")),
                       lab_file=(manifest.get("lab") or {}).get("file"), finished_at=finished,
                       gate_sha256=sha256_file(out_dir / "gate.json"),
                       evidence_manifest_sha256=sha256_file(out_dir / EVIDENCE_MANIFEST), packages=packages,
                       signed=bool((manifest.get("signing") or {}).get("required")))


def _moment(value: Any, shown: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise PromotionRefused(f"gate.json has no valid finished_at ({value!r})", file=shown) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
