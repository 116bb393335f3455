"""Promote an approved run's KB to one ring, and say where a KB stands across the rings (docs/rings.md).

``promote`` checks the run (run_checks), then production WSUS (wsus_checks), then approves the KB for the ring's
groups, reads the approvals back and records the promotion beside the run (evidence/promotions) and in the local
ledger. Any refusal happens before anything changes; ``dry_run`` stops right before the first change.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchgate.config import load_lab
from patchgate.config.lab import Lab
from patchgate.config.rings import Ring, RingsConfig, load_rings
from patchgate.errors import ConfigError, LabError
from patchgate.remoting.base import RemoteSession
from patchgate.evidence.ci import ci_context
from patchgate.evidence.promotions import RECORD_SCHEMA, record_path, sign_appendix, write_record
from patchgate.promote import ledger
from patchgate.promote.refusal import PromotionRefused
from patchgate.promote.run_checks import ApprovedRun, check_run
from patchgate.secrets.redact import redactor
from patchgate.promote.wsus_checks import (check_groups_exist, check_not_promoted, check_packages, check_soaked,
                                           promoted_at)
from patchgate.wsus.production import KbOnServer, approve_for_group, production_session, read_kb

DEFAULT_MAX_AGE = dt.timedelta(days=7)


@dataclass(frozen=True)
class PromoteRequest:
    run_dir: Path
    ring: str
    rings_file: Path | None = None
    dry_run: bool = False
    max_age: dt.timedelta = DEFAULT_MAX_AGE
    allow_unverified_sha256: bool = False
    public_key: str | None = None


@dataclass
class PromoteOutcome:
    record: dict[str, Any]
    record_file: Path | None  # None: a dry run, nothing written
    lines: list[str] = field(default_factory=list)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _run_lab(run: ApprovedRun) -> Lab | None:
    if not run.lab_file or not Path(run.lab_file).is_file():
        return None
    return load_lab(Path(run.lab_file))


def _rings(rings_file: Path | None, lab: Lab | None, run: ApprovedRun) -> RingsConfig:
    if rings_file is not None:
        return load_rings(rings_file, lab)
    if lab is not None and lab.rings is not None and lab.source is not None:
        return load_rings(lab.source, lab)
    raise ConfigError("no rings: pass --rings FILE, or add a `rings:` section to the run's lab file "
                      f"({run.lab_file or 'not recorded'})", field="--rings")


def _read(rings: RingsConfig, server: str, kb: str) -> KbOnServer:
    with production_session(server, rings.servers[server]) as session:
        return read_kb(session, server=server, kb=kb)


def promote(request: PromoteRequest, *, now: dt.datetime | None = None) -> PromoteOutcome:
    now = now or dt.datetime.now(dt.UTC)
    run = check_run(request.run_dir, max_age=request.max_age, now=now, public_key=request.public_key)
    lab = _run_lab(run)
    if run.signed and lab is None:
        raise PromotionRefused(f"the run's lab signs verdicts, but its lab file ({run.lab_file}) is not there to "
                               "sign the promotion record", file=str(request.run_dir))
    rings = _rings(request.rings_file, lab, run)
    ring = rings.ring(request.ring)
    # one session on the ring's server: read what it holds, and (unless a dry run or a refusal) approve and read back
    with production_session(ring.server, rings.servers[ring.server]) as session:
        return _promote(request, run, lab, rings, ring, session, now)


def _promote(request: PromoteRequest, run: ApprovedRun, lab: Lab | None, rings: RingsConfig, ring: Ring,
             session: RemoteSession, now: dt.datetime) -> PromoteOutcome:
    kb = read_kb(session, server=ring.server, kb=run.kb)
    sha_check = check_packages(kb, run.packages, allow_unverified=request.allow_unverified_sha256)
    check_groups_exist(kb, ring)
    check_not_promoted(kb, ring)
    previous = None
    if ring.after is not None:
        before = rings.ring(ring.after)
        seen = kb if before.server == ring.server else _read(rings, before.server, run.kb)
        previous = check_soaked(seen, before, ring, now)
    deadline = ring.deadline_at(now)
    if deadline is not None and deadline <= now:
        raise PromotionRefused(f"ring {ring.name}'s deadline {deadline.isoformat()} has passed; change it in "
                               f"{rings.source}", file=str(rings.source), field="deadline")
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA, "kb": run.kb, "ring": ring.name, "server": ring.server,
        "address": rings.servers[ring.server].address, "groups": list(ring.groups),
        "deadline": deadline.isoformat() if deadline else None, "promoted_at": now.isoformat(),
        "promoted_by": _who(), "ci": ci_context(os.environ), "run": run.to_dict(),
        "rings_file": str(rings.source) if rings.source else None,
        "previous_ring": previous.to_dict() if previous else None, "sha256_check": sha_check}
    plan = [f"ring {ring.name}: approve {run.kb} for {', '.join(ring.groups)} on {ring.server} "
            f"({rings.servers[ring.server].address}), deadline {record['deadline'] or 'none'}",
            f"run {run.run_id}: gate.json sha256:{run.gate_sha256}, packages {sha_check['result']}"]
    if previous is not None:
        plan.append(f"after ring {previous.ring}: promoted {previous.promoted_at.isoformat()}, soak "
                    f"{int(previous.soak.total_seconds())}s done")
    if request.dry_run:
        return PromoteOutcome(record=record, record_file=None,
                              lines=["dry run: nothing changed; would " + plan[0].split(": ", 1)[1], *plan[1:],
                                     f"would record it in {record_path(run.out_dir, ring.name)}"])
    for group in ring.groups:
        approve_for_group(session, server=ring.server, kb=run.kb, group=group, deadline=deadline)
    after = read_kb(session, server=ring.server, kb=run.kb)
    approvals = after.approved(ring.groups)
    missing = sorted(set(ring.groups) - {a.group for a in approvals})
    if missing:
        raise LabError(f"WSUS {ring.server} does not show {run.kb} approved for {', '.join(missing)} after "
                       "approving it", vm=ring.server)
    record["approvals"] = [a.to_dict() for a in approvals]
    appendix = write_record(run.out_dir, ring.name, record, evidence_sha256=run.evidence_manifest_sha256)
    signed = sign_appendix(run.out_dir, lab) if lab is not None else []
    written = record_path(run.out_dir, ring.name)
    ledger.append({"kb": run.kb, "ring": ring.name, "server": ring.server, "groups": list(ring.groups),
                   "promoted_at": record["promoted_at"], "promoted_by": record["promoted_by"],
                   "run_id": run.run_id, "run_dir": str(run.out_dir), "record": str(written)})
    lines = [f"promoted: {plan[0]}", *plan[1:], f"record: {written} (listed in "
             f"{appendix.relative_to(run.out_dir).as_posix()}{', signed' if signed else ''})"]
    return PromoteOutcome(record=record, record_file=written, lines=lines)


def status(kb: str, rings: RingsConfig, *, now: dt.datetime | None = None) -> tuple[list[str], bool]:
    """One line per ring: promoted when (from WSUS), or what it waits for; False when a server could not be read."""
    now = now or dt.datetime.now(dt.UTC)
    kb = kb.upper()
    seen: dict[str, KbOnServer | LabError] = {}
    local = {e.get("ring"): e for e in ledger.entries(kb)}
    lines, complete = [f"{kb} across {len(rings.rings)} ring(s) ({rings.source}):"], True
    when_of: dict[str, dt.datetime | None] = {}
    for ring in rings.rings:
        if ring.server not in seen:
            try:
                seen[ring.server] = _read(rings, ring.server, kb)
            except LabError as exc:
                seen[ring.server] = exc
        state = seen[ring.server]
        if isinstance(state, LabError):
            complete = False
            entry = local.get(ring.name)
            known = f"ledger: promoted {entry['promoted_at']} from run {entry['run_id']}" if entry else "ledger: none"
            lines.append(f"  {ring.name:<10} UNKNOWN   {ring.server} unreachable ({redactor.redact(str(state))}); "
                         f"{known}")
            when_of[ring.name] = None
            continue
        when = when_of[ring.name] = promoted_at(state, ring)
        groups = ", ".join(ring.groups)
        if when is not None:
            deadlines = sorted({a.deadline.isoformat() for a in state.approved(ring.groups) if a.deadline})
            source = f", run {local[ring.name]['run_id']}" if ring.name in local else ""
            lines.append(f"  {ring.name:<10} promoted  {when.isoformat()} ({groups} on {ring.server}; deadline "
                         f"{', '.join(deadlines) or 'none'}{source})")
            continue
        partial = sorted({a.group for a in state.approved(ring.groups)})
        waits = ""
        if ring.after is not None:
            before = when_of.get(ring.after)
            waits = (f"; waits for {ring.after}" if before is None else
                     f"; eligible from {(before + ring.soak_time).isoformat()}" if now < before + ring.soak_time
                     else "; eligible now")
        got = f" (approved only for {', '.join(partial)})" if partial else ""
        lines.append(f"  {ring.name:<10} pending   {groups} on {ring.server}{got}{waits}")
    return lines, complete
