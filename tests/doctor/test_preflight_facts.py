"""The preflight script, the twin's rendering of it and the strict reading of its facts agree on every property."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from patchgate.doctor.checks import preflight_checks
from patchgate.doctor.facts import FACT_KEYS, parse_facts, preflight_script
from patchgate.errors import ProbeError
from patchgate_twin.faults import Fault
from patchgate_twin.model import WindowsHost
from patchgate_twin.render_preflight import render_preflight

NOW = dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC)


def test_every_fact_is_printed_by_the_script_and_by_the_twin() -> None:
    script = preflight_script().body
    rendered = json.loads(render_preflight(WindowsHost("WS25-A"), {}, NOW))
    assert list(rendered) == list(FACT_KEYS)
    for key in FACT_KEYS:
        assert f"    {key} " in script, key


def test_a_missing_fact_is_said_not_guessed() -> None:
    doc = json.loads(render_preflight(WindowsHost("WS25-A"), {}, NOW))
    del doc["LanguageMode"]
    with pytest.raises(ProbeError, match="missing properties LanguageMode"):
        parse_facts(json.dumps(doc))


def test_a_healthy_twin_host_passes_the_preflight() -> None:
    facts = parse_facts(render_preflight(WindowsHost("WS25-A"), {}, NOW))
    checks = preflight_checks(facts, controller_now=NOW, candidate_bytes=500 * 2**20)
    assert [c.status for c in checks] == ["ok"] * 5, checks


@pytest.mark.parametrize("fault, check", [("disk-full", "free space"), ("clock-skew", "clock"),
                                          ("constrained-language", "language mode")])
def test_each_twin_condition_fails_one_preflight_check(fault: str, check: str) -> None:
    facts = parse_facts(render_preflight(WindowsHost("WS25-A"), {fault: Fault(fault)}, NOW))
    checks = preflight_checks(facts, controller_now=NOW, candidate_bytes=None)
    assert [c.name for c in checks if c.status == "fail"] == [check]
    assert all(c.advice for c in checks if c.status == "fail")


def test_a_one_element_pending_package_list_collapsed_by_ps51_is_still_a_list() -> None:
    doc = json.loads(render_preflight(WindowsHost("WS25-A"), {}, NOW))
    doc["PendingPackages"] = "Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.6899.1.7"
    facts = parse_facts(json.dumps(doc))
    assert facts.pending_packages == ("Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.6899.1.7",)
    assert [c.status for c in preflight_checks(facts, controller_now=NOW, candidate_bytes=None)][3] == "fail"


def test_preflight_script_parses_as_powershell_and_is_in_the_evidence() -> None:
    from probes.test_scripts import _syntax_errors

    from patchgate.evidence.manifests import script_hashes

    assert _syntax_errors(preflight_script().body.encode()) == []
    assert set(script_hashes()["doctor"]) == {"preflight.ps1"}
