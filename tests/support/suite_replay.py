"""The suites' invariant checks evaluated offline on a transcript: the same capture as baseline and as post, no
install, no restart. Nothing changed, so every check that can judge a posture pair must pass; one that fails (or
finds the VM unreadable) means the suites read the transcript differently from what the VM showed, e.g. after a
property was renamed."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

import pytest

from fixtures.invariants import APPLIES_TO, INVARIANT
from patchgate.config.lab import VmSpec
from patchgate.config.policy import Policy
from patchgate.doctor.transcript import posture_of
from patchgate.observations import VmObservation

SUITES = Path(__file__).resolve().parents[2] / "suites"
# what an offline replay cannot give a check: an install, its restart, a WSUS sync, the candidate, a session
NEEDS_A_RUN = {"candidate", "hotpatch_calendar", "reachability", "host"}
NEEDS_A_SYNC = {"wsus.sync"}  # judges the synchronization started after the install


def _marks(func: Callable[..., Any], name: str) -> list[Any]:
    return [m for m in getattr(func, "pytestmark", []) if m.name == name]


def invariant_checks() -> list[tuple[str, tuple[str, ...], Callable[..., Any]]]:
    """(invariant id, the roles its module applies to, the check) for every invariant test in suites/."""
    checks = []
    for path in sorted(SUITES.glob("test_*.py")):
        module = importlib.import_module(f"suites.{path.stem}")
        marks = getattr(module, "pytestmark", [])
        roles = tuple(role for mark in (marks if isinstance(marks, list) else [marks])
                      if mark.name == APPLIES_TO for role in mark.args)
        for _name, func in inspect.getmembers(module, inspect.isfunction):
            for mark in _marks(func, INVARIANT):
                checks.append((mark.args[0], roles, func))
    return checks


def evaluate(folder: Path) -> dict[str, str]:
    """Each invariant's outcome on the transcript: 'passed', 'failed: ...', or 'not judged: why'."""
    posture, role = posture_of(folder)
    obs = VmObservation(vm=VmSpec(name="transcript-vm", role=role, snapshot="transcript"), baseline=posture,
                        post=posture)
    outcomes: dict[str, str] = {}
    for invariant_id, roles, func in invariant_checks():
        params = set(inspect.signature(func).parameters)
        if roles and role not in roles:
            continue
        if params & NEEDS_A_RUN or invariant_id in NEEDS_A_SYNC:
            outcomes[invariant_id] = "not judged: needs a run"
            continue
        if "enrolled" in params and not posture.area("hotpatch").enrolled:
            outcomes[invariant_id] = ("failed: role hotpatch-member but the capture reads as not enrolled"
                                      if role == "hotpatch-member" else "not judged: not hotpatch-enrolled")
            continue
        given = {"obs": obs, "enrolled": obs, "policy": Policy()}
        try:
            func(**{name: given[name] for name in params})
        except pytest.skip.Exception as skipped:
            outcomes[invariant_id] = f"not judged: {skipped.msg}"
        except AssertionError as failure:
            outcomes[invariant_id] = f"failed: {str(failure).splitlines()[0] if str(failure) else failure!r}"
        except Exception as exc:  # noqa: BLE001 - a check that cannot read the posture fails the replay too
            outcomes[invariant_id] = f"failed: {exc.__class__.__name__}: {exc}"
        else:
            outcomes[invariant_id] = "passed"
    return outcomes
