"""pytest-xdist gives the same verdict, checks, junit and Allure results as one process, one worker per VM."""

from __future__ import annotations

from collections import defaultdict

import pytest

from scale.conftest import Run

BLOCKED = ("--lab", "twin", "--candidate", "KB5070881")


@pytest.fixture(scope="module", params=["2", "auto"])
def distributed(request, run_validate) -> Run:
    if request.param == "2":
        return request.getfixturevalue("xdist_run")  # the shared -n 2 run (tests/conftest.py)
    return run_validate(f"xdist-{request.param}", *BLOCKED, "--", "-n", request.param)


def _allure(run: Run) -> set[tuple[str, str, str]]:
    return {(r["fullName"], r["status"], next((p["value"] for p in r.get("parameters", [])
                                               if p["name"] == "vm_name"), "")) for r in run.allure_results()}


def test_gate_is_the_same(single: Run, distributed: Run) -> None:
    assert single.proc.returncode == distributed.proc.returncode == 1, distributed.log
    assert distributed.gate()["verdict"] == single.gate()["verdict"] == "block"
    assert distributed.gate_checks() == single.gate_checks()
    assert len(single.gate_checks()) > 50
    assert {vm["name"] for vm in distributed.gate()["vms"]} == {vm["name"] for vm in single.gate()["vms"]}


def test_junit_is_as_complete(single: Run, distributed: Run) -> None:
    assert distributed.junit_cases() == single.junit_cases()
    assert any(outcome == "failure" for _, _, outcome in single.junit_cases())


def test_allure_results_are_as_complete(single: Run, distributed: Run) -> None:
    assert _allure(distributed) == _allure(single)
    assert len(distributed.allure_results()) == len(single.allure_results())


def test_each_vm_ran_on_one_worker_and_restored_once(distributed: Run) -> None:
    threads: dict[str, set[str]] = defaultdict(set)
    for result in distributed.allure_results():
        labels = {label["name"]: label["value"] for label in result["labels"]}
        threads[labels["vm"]].add(labels["thread"])
    assert len(threads) == 4
    assert all(len(t) == 1 for t in threads.values()), threads  # one worker per VM
    assert len(set().union(*threads.values())) == 2  # and both workers were used
    for vm in distributed.gate()["vms"]:
        steps = [s["name"] for s in vm["steps"]]
        assert steps.count("revert") == 1 and steps.count("restore") == 1, (vm["name"], steps)
        assert vm["restored"] and not vm["error"]
