"""Each check's own attachment in Allure, "check result": its verdict in words, its message and before/after table
(or the waiver beside it), and what it let through as allowed or as noise.

The VM's postures and diff belong to the VM's lifecycle (under *Set up*); without an attachment of its own a
check's *Attachments* tab shows Allure 3's untranslated placeholder instead of evidence.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from patchgate_pytest.invariants import INVARIANT
from patchgate_pytest.lab import VM_PARAM
from patchgate.secrets.redact import redactor

NAME = "check result"


def _message(report: pytest.TestReport, call: pytest.CallInfo) -> str:
    if hasattr(report, "wasxfail"):  # waived: the waiver line, then the failure and its table
        return str(report.wasxfail)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if call.excinfo is not None:
        return str(call.excinfo.value).partition("\nassert ")[0]
    return ""


def _status(report: pytest.TestReport, call: pytest.CallInfo) -> str:
    if hasattr(report, "wasxfail"):
        return "waived"
    if report.skipped:
        return "not judged (skipped)"
    if report.failed and call.excinfo is not None and not call.excinfo.errisinstance(AssertionError):
        return "broken (lab trouble)"
    return report.outcome


def result_text(invariant_id: str, vm: str, report: pytest.TestReport, call: pytest.CallInfo) -> str:
    lines = [f"{invariant_id} on {vm}: {_status(report, call)}"]
    message = _message(report, call)
    if message:
        lines += ["", message]
    elif report.passed:
        lines += ["", ("the invariant holds: nothing this check judges changed against the baseline "
                       "(the postures and their diff are in the VM's lifecycle, under Set up)")]
    notes = [value for key, value in report.user_properties if key == "patchgate.note"]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: the checks' notes are on the report by then
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    ends_here = call.when == "call" or (call.when == "setup" and not report.passed)  # skipped or broken in set-up
    if not ends_here or item.config.pluginmanager.get_plugin("allure_listener") is None:
        return
    mark = item.get_closest_marker(INVARIANT)
    callspec = getattr(item, "callspec", None)
    vm = callspec.params.get(VM_PARAM) if callspec else None
    if mark is None or vm is None:
        return
    from allure_commons.model2 import Attachment, TestResult

    from patchgate_pytest.allure_writer import attach_data

    result = item.config.pluginmanager.get_plugin("allure_listener").allure_logger.get_last_item(TestResult)
    if result is None:
        return
    file_name = f"{uuid4()}-attachment.txt"
    attach_data(redactor.redact(result_text(mark.args[0], vm, report, call)), file_name)  # the writer thread
    result.attachments.append(Attachment(name=NAME, source=file_name, type="text/plain"))
