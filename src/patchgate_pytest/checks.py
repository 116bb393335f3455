"""Turn pytest reports into gate checks and write gate.json when the session ends.

Status rules: a setup error (lab trouble) or a non-assertion exception is *broken*; an AssertionError is *failed*;
a failure an active waiver covers is *waived*. Works the same under pytest-xdist (the controller collects).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from patchgate_pytest.invariants import INVARIANT
from patchgate_pytest.selection import selection_record
from patchgate_pytest.state import current_config, run_state
from patchgate.labkinds import kind_facts
from patchgate import __version__
from patchgate.errors import LabError
from patchgate.evidence.gate import Check, GateReport, decide
from patchgate.secrets.redact import redactor

CHECKS_KEY = pytest.StashKey[dict[str, Check]]()
RANK = {"passed": 0, "skipped": 0, "waived": 1, "failed": 2, "broken": 3}


def _props(report: pytest.TestReport) -> dict[str, str]:
    return {k: v for k, v in report.user_properties if isinstance(k, str) and k.startswith("patchgate.")}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = run_state(config)
    if state is None:
        return
    roles = {vm.name: vm.role for vm in state.lab.vms}
    for item in items:
        mark = item.get_closest_marker(INVARIANT)
        callspec = getattr(item, "callspec", None)
        vm = callspec.params.get("vm_name") if callspec else None
        if mark is None or vm is None:
            continue
        item.user_properties.extend([
            ("patchgate.invariant", mark.args[0]), ("patchgate.area", mark.kwargs["area"]),
            ("patchgate.severity", mark.kwargs.get("severity", "critical")), ("patchgate.vm", vm),
            ("patchgate.role", roles.get(vm, ""))])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not any(k == "patchgate.invariant" for k, _ in item.user_properties):
        return
    status = None
    message = ""
    if report.when == "call" and report.passed:
        status = "passed"
    elif report.skipped and hasattr(report, "wasxfail") and str(report.wasxfail).startswith("waived"):
        status, message = "waived", str(report.wasxfail)  # the waiver line, then the failure it covers
    elif report.skipped:
        status = "skipped"
        message = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
    elif report.failed:
        exc = call.excinfo.value if call.excinfo else None
        status = "failed" if report.when == "call" and isinstance(exc, AssertionError) else "broken"
        message = _without_rewrite(str(exc)) if exc is not None else report.longreprtext
        if status == "broken" and isinstance(exc, LabError):
            report.user_properties.append(("patchgate.step", exc.step or ""))  # where the lab failed the VM
    if status is not None:
        report.user_properties.append(("patchgate.status", status))
        report.user_properties.append(("patchgate.message", redactor.redact(message)))


def _without_rewrite(message: str) -> str:
    """Drop pytest's appended ``assert <expression>`` explanation: the invariant's own message says it all."""
    head, sep, _ = message.partition("\nassert ")
    return head if sep and head.strip() else message


def _crashed_worker(report: pytest.TestReport) -> None:
    """pytest-xdist reports a test whose worker died as failed, without our properties: that is lab trouble
    (broken) on the test's VM, never a pass by omission."""
    import re

    config = current_config()
    match = re.search(r"\[([^\[\]]+)\]$", report.nodeid)
    vm = match.group(1) if match else ""
    checks = config.stash.setdefault(CHECKS_KEY, {})
    checks[f"crash:{report.nodeid}"] = check = Check(
        vm=vm, area="lab", invariant="lab.worker", status="broken", nodeid=report.nodeid, step="worker",
        message=f"[vm {vm}, step worker] {_last_line(report.longreprtext)} (the VM was restored by the "
                "replacement worker or reaped by the controller)")
    _allure_crash_result(config, check)


def _allure_crash_result(config: pytest.Config, check: Check) -> None:
    """Allure never hears of a test whose worker died (allure-pytest runs in the worker): write its result here,
    status broken, so the report's "lab trouble" category shows it."""
    import time
    import uuid

    folder = getattr(config.option, "allure_report_dir", None)
    if not folder:
        return
    now = int(time.time() * 1000)
    result = {"uuid": str(uuid.uuid4()), "historyId": f"crash:{check.nodeid}", "fullName": check.nodeid,
              "name": f"{check.nodeid.split('::')[-1]} (worker crashed)", "status": "broken", "stage": "finished",
              "statusDetails": {"message": check.message}, "start": now, "stop": now,
              "labels": [{"name": "vm", "value": check.vm}, {"name": "invariant", "value": check.invariant},
                         {"name": "suite", "value": "lab trouble"}, {"name": "tag", "value": "lab-trouble"}]}
    path = Path(folder) / f"{result['uuid']}-result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the pytest-xdist worker crashed"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = _props(report)
    status = props.get("patchgate.status")
    if not status:
        config = current_config()
        if report.failed and report.when not in ("setup", "call", "teardown") and config is not None \
                and run_state(config) is not None:
            _crashed_worker(report)
        return
    config = current_config()
    assert config is not None
    checks = config.stash.setdefault(CHECKS_KEY, {})
    waiver = json.loads(props["patchgate.waiver"]) if status == "waived" and "patchgate.waiver" in props else None
    check = Check(vm=props.get("patchgate.vm", ""), area=props.get("patchgate.area", ""),
                  invariant=props.get("patchgate.invariant", ""), status=status,  # type: ignore[arg-type]
                  message=props.get("patchgate.message") or props.get("patchgate.note", ""),
                  role=props.get("patchgate.role", ""), nodeid=report.nodeid, duration_s=round(report.duration, 3),
                  step=props.get("patchgate.step") or None, waiver=waiver)
    previous = checks.get(report.nodeid)
    if previous is None or RANK[check.status] > RANK[previous.status]:
        checks[report.nodeid] = check




def failed_vms(config: pytest.Config) -> set[str]:
    return {c.vm for c in config.stash.get(CHECKS_KEY, {}).values() if c.status in ("failed", "broken")}


def _vm_summaries(out_dir: Path) -> list[dict]:
    folder = out_dir / "vms"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def _lab_checks(summaries: list[dict], checks: list[Check]) -> list[Check]:
    """Lab trouble that no invariant test reported (a VM with no selected checks, a failed restore)."""
    extra: list[Check] = []
    checked = {c.vm for c in checks}
    for vm in summaries:
        name = vm["name"]
        if vm.get("error") and name not in checked:
            extra.append(Check(vm=name, area="lab", invariant="lab.lifecycle", status="broken",
                               message=vm["error"], role=vm.get("role", ""), step=vm.get("failed_step")))
        if vm.get("lease_lost"):
            extra.append(Check(vm=name, area="lab", invariant="lab.lease", status="broken",
                               message=f"this run lost the VM's lease, so another run may have changed it: "
                                       f"{vm['lease_lost']}", role=vm.get("role", ""), step="lease"))
        if vm.get("restore_error"):
            extra.append(Check(vm=name, area="lab", invariant="lab.restore", status="broken",
                               message=vm["restore_error"], role=vm.get("role", ""), step="restore"))
    return extra


def _external_wsus_checks(out_dir: Path) -> list[Check]:
    """A WSUS outside the lab whose approval was not undone (nothing reverts it): lab trouble, never approve.
    Under pytest-xdist each worker wrote its own file, and only the last to leave undid the approval."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out_dir.glob("wsus*.json"))]
    approved = [d for d in docs if d.get("approval")]
    if not approved:
        return []
    undos = [d.get("undo") or {} for d in approved]
    problem = next((u["error"] for u in undos if u.get("error")), None)
    if problem is None and any("Removed" in u for u in undos):
        return []
    server = approved[0].get("server")
    return [Check(vm=str(server), area="lab", invariant="lab.wsus_undo", status="broken",
                  message=problem or f"the approval on {server} was never undone", role="wsus-server",
                  step="wsus_unapprove")]


def _expired_waivers(state) -> list[dict[str, object]]:
    """The lab's waivers for this candidate that expired before today: they no longer apply, and the closing
    verdict lines say so."""
    kb = state.candidate.kb.upper()
    return [{"invariant": w.invariant, "vms": list(w.vms), "roles": list(w.roles), "owner": w.owner,
             "expires": w.expires.isoformat(), "justification": w.justification}
            for w in state.lab.policy.waivers
            if w.expired(state.today) and (not w.candidate or w.candidate.upper() == kb)]


def _uncollected(config: pytest.Config) -> list[str]:
    """The suite modules pytest could not collect (an import error, say), from its terminal's statistics."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    errors = reporter.stats.get("error", []) if reporter is not None else []
    return [r.nodeid for r in errors if isinstance(r, pytest.CollectReport) and r.nodeid]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = run_state(config)
    if state is None or hasattr(config, "workerinput"):
        return
    _reap_dead_processes(config, state)
    checks = list(config.stash.get(CHECKS_KEY, {}).values())
    summaries = _vm_summaries(state.out_dir)
    checks += _lab_checks(summaries, checks) + _external_wsus_checks(state.out_dir)
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop)
    verdict, reason = decide(checks)
    selection = selection_record(config, state)
    if verdict == "approve" and selection["partial"]:
        reason = f"approve (partial: {selection['narrowed_by']}): {reason}; the rest of the lab was not checked"
    uncollected = _uncollected(config)
    if uncollected:
        verdict, reason = "inconclusive", (f"the suites could not be collected: {', '.join(uncollected)} (pytest "
                                           "printed why); " + reason)
    elif interrupted:
        verdict, reason = "inconclusive", "the run was interrupted before every check finished; " + reason
    elif exitstatus in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        verdict, reason = "inconclusive", f"pytest ended with {pytest.ExitCode(exitstatus).name}; " + reason
    report = GateReport(
        verdict=verdict, reason=reason, run_id=state.run_id,
        candidate={"kb": state.candidate.kb, "title": state.candidate.title,
                   "classification": state.candidate.classification, "target_build": state.candidate.target_build,
                   "file": str(state.candidate_path), "kb_article": str(state.candidate.references.kb_article),
                   "cves": list(state.candidate.references.cves)},
        lab={"name": state.lab.name, "file": str(state.lab_path), "hypervisor": state.lab.hypervisor.kind,
             **kind_facts(state.lab)},
        started_at=state.started_at, finished_at=dt.datetime.now(dt.timezone.utc),
        checks=sorted(checks, key=lambda c: (c.vm, c.invariant)),
        vms=summaries,
        remoting={"kind": state.lab.remoting.kind},
        cert_validation=_cert_validation(state, summaries),
        waivers=[{"vm": c.vm, "invariant": c.invariant, **(c.waiver or {}), "waiver": c.message} for c in checks
                 if c.status == "waived"],
        waivers_expired=_expired_waivers(state), selection=selection,
        interrupted=interrupted, patchgate_version=__version__)
    report.write(state.out_dir / "gate.json")
    from patchgate_pytest.evidence_hooks import after_gate

    after_gate(config, state, report)
    session.exitstatus = report.exit_code
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()  # in -q mode the progress row ("[100%]") does not end itself
        shown = f"{verdict.upper()} (partial)" if selection["partial"] and verdict == "approve" else verdict.upper()
        reporter.write_sep("=", f"patchgate verdict: {shown} ({reason})",
                           red=verdict == "block", yellow=verdict == "inconclusive", green=verdict == "approve")
        reporter.write_line(f"gate: {state.out_dir / 'gate.json'}")


def _cert_validation(state, summaries: list[dict]) -> dict[str, bool]:
    for vm in summaries:
        if "cert_validation" in vm:
            return vm["cert_validation"]
    return {"hypervisor": True, "remoting": True, "secrets": True}


def _stale_leases_of(state) -> bool:
    """A worker that died after restoring its VM leaves only its lease record behind (the lock itself is free)."""
    import socket

    from patchgate.leases import build_lease_manager
    from patchgate.run.liveness import process_alive

    here = socket.gethostname()
    manager = build_lease_manager(state.lab)
    try:
        return any(info.run_id == state.run_id and (info.state == "stale" or (
            info.host == here and not process_alive(info.pid, info.acquired))) for info in manager.list_leases())
    finally:
        manager.close()


def _reap_dead_processes(config: pytest.Config, state) -> None:
    """A pytest-xdist worker that died never restored its VMs: the controller restores what the run's ledger
    says a dead process of this run left changed (nothing, in a run where every process finished)."""
    from patchgate.run.ledger import ledger_dir, read_ledger

    path = ledger_dir() / f"{state.run_id}.jsonl"
    if not path.is_file():
        return
    if not read_ledger(path).abandoned_vms() and not _stale_leases_of(state):
        return
    from patchgate.run.reap import reap_lab

    report = reap_lab(state.lab, run_id=state.run_id, kind_catalogs=list(state.kind_catalogs))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(report.render().rstrip(), yellow=True)


def _wants_tracebacks(config: pytest.Config) -> bool:
    """Lab trouble shows its tracebacks only when asked for (``-- --log-level=DEBUG``)."""
    level = str(config.getoption("log_level", None) or "").upper()
    return level in ("DEBUG", "10")


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A check broken by lab trouble is counted as *broken*, not as a pytest error: pytest then prints no
    ERRORS section (one identical traceback per check of the VM); the closing verdict lines give one line per VM
    with the lab's message, and gate.json, junit.xml and Allure keep everything."""
    if not isinstance(report, pytest.TestReport):  # a suite that cannot be collected keeps pytest's own report
        return None
    if report.when == "call" or not report.failed or _wants_tracebacks(config):
        return None
    if dict(report.user_properties).get("patchgate.status") != "broken":
        return None
    return "broken", "E", "BROKEN"
