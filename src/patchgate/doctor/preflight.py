"""The preflight of every run: the cheap doctor checks, run on the VM's session before the install."""

from __future__ import annotations

import datetime as dt

from patchgate.config.candidate import Candidate
from patchgate.doctor.checks import Check, preflight_checks
from patchgate.doctor.facts import GuestFacts, read_facts
from patchgate.remoting.base import RemoteSession


def candidate_bytes(candidate: Candidate | None) -> int | None:
    """The candidate's package files on disk (None without a candidate or when a file is missing)."""
    if candidate is None:
        return None
    try:
        return sum(candidate.package_path(package).stat().st_size for package in candidate.packages)
    except OSError:
        return None


def run_preflight(session: RemoteSession, candidate: Candidate | None, *, timeout: float) -> list[Check]:
    facts, _raw = read_facts(session, timeout=timeout)
    return judge_preflight(facts, candidate)


def judge_preflight(facts: GuestFacts, candidate: Candidate | None) -> list[Check]:
    return preflight_checks(facts, controller_now=dt.datetime.now(dt.UTC),
                            candidate_bytes=candidate_bytes(candidate))


def blocking(checks: list[Check]) -> list[Check]:
    """The checks that stop a run (warnings do not)."""
    return [check for check in checks if check.status == "fail"]
