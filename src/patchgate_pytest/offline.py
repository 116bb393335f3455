"""The suites' invariant checks evaluated on an observation without a lab run: a transcript's capture as baseline
and post (the transcript replay, docs/probes.md), or a restart without an install (``patchgate doctor --noise``,
docs/doctor.md). Each invariant's outcome is passed, failed (with the check's message and table) or not judged
(with why: a check about the candidate, its sync or its session needs a real run).

Run as ``python -m patchgate_pytest.offline OBSERVATION.json``: the file holds the role, both captures' raw text and the
restart; the outcomes are printed as one JSON object. The engine runs it as a child, as it runs the suites.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from patchgate_pytest.invariants import APPLIES_TO, CANDIDATE_ONLY, INVARIANT
from patchgate.config.lab import VmSpec
from patchgate.config.policy import Policy
from patchgate.model.observations import InstallRecord, VmObservation

SUITES = Path.cwd() / "suites"  # the suites of the folder it runs in (the engine starts it there)
NEEDS_A_RUN = {"candidate", "hotpatch_calendar", "reachability", "host"}  # fixtures only a lab run gives
NEEDS_A_SYNC = {"wsus.sync"}  # judges the synchronization the run starts after the install

Outcome = dict[str, str]  # {"status": passed | failed | not judged, "detail": ...}


def _marks(target: Any) -> list[Any]:
    marks = getattr(target, "pytestmark", [])
    return marks if isinstance(marks, list) else [marks]


def invariant_checks() -> list[tuple[str, tuple[str, ...], Callable[..., Any]]]:
    """(invariant id, the roles its module applies to, the check) for every invariant test in suites/."""
    checks = []
    for path in sorted(SUITES.glob("test_*.py")):
        module = importlib.import_module(f"suites.{path.stem}")
        roles = tuple(role for mark in _marks(module) if mark.name == APPLIES_TO for role in mark.args)
        for _name, func in inspect.getmembers(module, inspect.isfunction):
            checks += [(mark.args[0], roles, func) for mark in _marks(func) if mark.name == INVARIANT]
    return checks


def _not_judged(why: str) -> Outcome:
    return {"status": "not judged", "detail": why}


def evaluate(obs: VmObservation, policy: Policy | None = None) -> dict[str, Outcome]:
    """Each invariant that applies to the VM's role, judged on ``obs`` as the suites judge it."""
    given = {"obs": obs, "enrolled": obs, "policy": policy or Policy()}
    outcomes: dict[str, Outcome] = {}
    for invariant_id, roles, func in invariant_checks():
        params = set(inspect.signature(func).parameters)
        if roles and obs.vm.role not in roles:
            continue
        if params & NEEDS_A_RUN or invariant_id in NEEDS_A_SYNC or invariant_id in CANDIDATE_ONLY:
            outcomes[invariant_id] = _not_judged("needs a run with the candidate")
            continue
        if "enrolled" in params and not obs.baseline.area("hotpatch").enrolled:
            outcomes[invariant_id] = (
                {"status": "failed", "detail": "role hotpatch-member but the baseline reads as not enrolled"}
                if obs.vm.role == "hotpatch-member" else _not_judged("not hotpatch-enrolled at baseline"))
            continue
        try:
            func(**{name: given[name] for name in params})
        except pytest.skip.Exception as skipped:
            outcomes[invariant_id] = _not_judged(skipped.msg)
        except AssertionError as failure:
            text = str(failure.args[0]) if failure.args else repr(failure)
            outcomes[invariant_id] = {"status": "failed", "detail": text.partition("\nassert ")[0]}
        except Exception as exc:  # noqa: BLE001 - a check that cannot read the posture fails too
            outcomes[invariant_id] = {"status": "failed", "detail": f"{exc.__class__.__name__}: {exc}"}
        else:
            outcomes[invariant_id] = {"status": "passed", "detail": ""}
    return outcomes


def evaluate_transcript(folder: Path) -> dict[str, Outcome]:
    """A transcript's capture as baseline and as post: nothing changed, no install, no restart."""
    from patchgate.doctor.transcript import posture_of

    posture, role = posture_of(folder)
    vm = VmSpec(name="transcript-vm", role=role, snapshot="transcript")  # type: ignore[arg-type]
    return evaluate(VmObservation(vm=vm, baseline=posture, post=posture))


def observation_from(document: dict[str, Any]) -> VmObservation:
    """The observation ``patchgate doctor --noise`` hands over: both captures, parsed again here."""
    from patchgate.probes.batch import parse_capture
    from patchgate.remoting.base import ScriptResult

    vm = VmSpec(name=document["vm"], role=document["role"], snapshot=document["snapshot"])

    def posture(raw: str) -> Any:
        return parse_capture(ScriptResult("capture", [raw]), vm=vm.name).posture

    restarted = dt.datetime.fromisoformat(document["restarted_at"])
    install = InstallRecord(kb="(noise probe: no candidate)", exit_code=0, restart_needed=True, output=[],
                            started_at=restarted, finished_at=restarted)
    return VmObservation(vm=vm, baseline=posture(document["baseline_raw"]), post=posture(document["post_raw"]),
                         install=install, rebooted=True, clock_offsets=document.get("clock_offsets") or {})


def main(argv: list[str]) -> int:
    document = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(json.dumps(evaluate(observation_from(document))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
