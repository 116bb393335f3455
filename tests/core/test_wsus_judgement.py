"""How the WSUS install step reads a client's task result: lab trouble for a failed task, a candidate not offered
or not installed, never a verdict."""

from __future__ import annotations

import pytest

from patchgate.errors import InstallError, LabError
from patchgate.wsus.ops import ClientResult
from patchgate.wsus.steps import judge_install


def _result(offered=("KB5070881",), installed=("KB5070881",), code=2, error=None, results=()) -> ClientResult:
    return ClientResult(offered=[{"Kb": kb, "Title": kb} for kb in offered], installed=list(installed),
                        results=list(results), result_code=code, hresult=0 if code == 2 else -2146498270,
                        reboot_required=True, task_removed=True, error=error)


def test_an_installed_candidate_passes():
    judge_install("vm", "KB5070881", _result())


def test_a_failed_task_names_its_result_code_and_hresult():
    with pytest.raises(InstallError, match=r"ended Failed \(ResultCode 4, HResult 0x800F0922\): boom"):
        judge_install("vm", "KB5070881", _result(code=4, error="boom"))


def test_a_candidate_wsus_did_not_offer_lists_what_it_did_offer():
    with pytest.raises(LabError, match=r"WSUS did not offer KB5070881 to VM vm \(offered: KB5070893\)") as info:
        judge_install("vm", "KB5070881", _result(offered=("KB5070893",), installed=("KB5070893",)))
    assert not isinstance(info.value, InstallError)


def test_an_offered_candidate_that_did_not_install_shows_each_result():
    failed = {"Kb": "KB5070881", "ResultCode": 4, "HResult": -2146498270}
    with pytest.raises(InstallError, match=r"KB5070881: ResultCode 4, HResult 0x800F0922"):
        judge_install("vm", "KB5070881", _result(installed=(), code=3, results=(failed,)))
