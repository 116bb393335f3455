"""How a suite declares an invariant: ``@invariant("hotpatch.enrollment", severity="blocker")`` on a test,
``pytestmark = applies_to("hotpatch-member")`` on a module. Waivers from the lab policy apply here.

Two things travel from a test to gate.json through its report's user properties: the waiver that covered a failure
(``patchgate.waiver``: owner, expiry, justification) and the changes an allowlist let through
(``patchgate.note``), so an allowed change still shows in the evidence of a passing check.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest

from patchgate.model.observations import VmObservation

SEVERITIES = ("blocker", "critical", "normal", "minor", "trivial")
APPLIES_TO = "patchgate_applies_to"
INVARIANT = "patchgate_invariant"


def applies_to(*roles: str) -> pytest.MarkDecorator:
    """The VM roles a suite module runs on; tests are parametrized over the lab's VMs with these roles."""
    return getattr(pytest.mark, APPLIES_TO)(*roles)


def invariant(invariant_id: str, *, severity: str = "critical") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a test as the check of one invariant; a failure an active waiver covers becomes 'waived'."""
    area = invariant_id.split(".", 1)[0]
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # a failure shows the policy's assert, not this wrapper
            notes: list[str] = []
            token = _NOTES.set(notes)
            try:
                func(*args, **kwargs)
            except AssertionError as failure:
                obs = next((v for v in kwargs.values() if isinstance(v, VmObservation)), None)
                if obs is not None and _seen_on_control(func, invariant_id, obs, kwargs, failure):
                    return
                if obs is not None:
                    _apply_waiver(invariant_id, obs, failure)
                raise
            finally:
                _NOTES.reset(token)
                if notes:
                    _PENDING["note"] = "\n".join(notes)

        mark = getattr(pytest.mark, INVARIANT)(invariant_id, area=area, severity=severity)
        return getattr(pytest.mark, area)(mark(wrapper))

    return decorate


# Invariants about the candidate itself: a control without the candidate cannot excuse them (it repeats the
# candidate's restart, so it would "restart" too).
CANDIDATE_ONLY = frozenset({"hotpatch.no_restart", "hotpatch.build", "hotpatch.track", "management.reachable",
                            "wsus.offered"})


def _seen_on_control(func: Callable[..., Any], invariant_id: str, obs: VmObservation, kwargs: dict[str, Any],
                     failure: AssertionError) -> bool:
    """A failure the control run (no candidate) shows too is noise seen on the control: the check passes with
    both failures side by side in its note (docs/invariants.md, "Control runs")."""
    control = obs.control
    if control is None or invariant_id in CANDIDATE_ONLY:
        if obs.control_error and invariant_id not in CANDIDATE_ONLY:
            failure.args = (f"{failure.args[0] if failure.args else ''}\n(the control run could not finish: "
                            f"{obs.control_error})",)
        return False
    view = dataclasses.replace(obs, baseline=control.baseline, post=control.post, install=control.install,
                               rebooted=control.rebooted, wsus_sync=control.wsus_sync,
                               clock_offsets=control.clock_offsets, unreachable=control.unreachable, control=None)
    token = _NOTES.set([])  # what the check notes about the control is not the candidate's evidence
    try:
        func(**{k: (view if isinstance(v, VmObservation) else v) for k, v in kwargs.items()})
    except AssertionError as on_control:
        _NOTES.reset(token)
        where = "" if control.vm.name == obs.vm.name else f" (paired VM {control.vm.name})"
        note(f"noise seen on the control (the same check fails without the candidate):\n"
             f"--- with the candidate ---\n{_table_of(failure)}\n--- on the control{where} ---\n"
             f"{_table_of(on_control)}")
        return True
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - a control the check cannot judge (a skip, a missing area) excuses nothing
        _NOTES.reset(token)
        return False
    _NOTES.reset(token)
    return False


def _table_of(failure: AssertionError) -> str:
    """A failure's own message and table, without pytest's assertion explanation."""
    text = str(failure.args[0]) if failure.args else str(failure)
    return text.partition("\nassert ")[0]


def _apply_waiver(invariant_id: str, obs: VmObservation, failure: AssertionError) -> None:
    from patchgate_pytest.state import current_config, run_state

    config = current_config()
    state = run_state(config) if config is not None else None
    if state is None:
        return
    for waiver in state.lab.policy.waivers:
        if not waiver.covers(invariant=invariant_id, vm=obs.vm.name, role=obs.vm.role, candidate=state.candidate.kb):
            continue
        if waiver.expired(state.today):
            note = (f"\n(waiver by {waiver.owner} expired on {waiver.expires.isoformat()} and no longer "
                    f"applies: {waiver.justification})")
            text = str(failure.args[0]) if failure.args else ""
            head, sep, explanation = text.partition("\nassert ")  # keep the note before pytest's explanation
            failure.args = (head + note + sep + explanation,)
            continue
        _PENDING["waiver"] = json.dumps({
            "owner": waiver.owner, "expires": waiver.expires.isoformat(), "justification": waiver.justification,
            "invariant": waiver.invariant, "vms": list(waiver.vms), "roles": list(waiver.roles),
            "candidate": waiver.candidate})
        text = str(failure.args[0]) if failure.args else ""
        evidence = text.partition("\nassert ")[0] if text.partition("\nassert ")[0].strip() else text
        # the reason is what junit, Allure and gate.json keep: the waiver line, then the failure and its table
        pytest.xfail(f"waived by {waiver.owner} until {waiver.expires.isoformat()}: {waiver.justification}\n"
                     f"{evidence}".rstrip())


def note(text: str) -> None:
    """Record something a passing check let through (an allowlisted change), shown with the check in gate.json."""
    notes = _NOTES.get(None)
    if notes is not None:
        notes.append(text)


_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("patchgate_invariant_notes", default=None)
_PENDING: dict[str, str] = {}  # set by the running test, moved onto its report right after (same process)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if call.when != "call":
        return
    report: pytest.TestReport = outcome.get_result()
    pending = dict(_PENDING)
    _PENDING.clear()
    for key in ("note", "waiver"):
        if key in pending:
            report.user_properties.append((f"patchgate.{key}", pending[key]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{APPLIES_TO}(*roles): VM roles a suite applies to")
    config.addinivalue_line("markers", f"{INVARIANT}(id, area, severity): the invariant a test checks")
    for area in ("hotpatch", "wsus", "services", "firewall", "management"):
        config.addinivalue_line("markers", f"{area}: {area} invariants")
