"""The Hyper-V provider's host scripts: each names its operation on its first line, takes its values as parameters
(never in its text), and is one the twin's Hyper-V host answers (so the rehearsal lab exercises every one)."""

from __future__ import annotations

import re

import pytest

from patchgate.hypervisors.hyperv.scripts import SCRIPTS, op

FIRST_STATEMENT = re.compile(r"^(?:\s*#[^\n]*\n)*\s*(\S+)")


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_script_names_its_operation_and_takes_parameters_first(name: str) -> None:
    body = SCRIPTS[name]
    assert body.splitlines()[0] == f"# patchgate-op: {name}"
    first = FIRST_STATEMENT.match(body)
    assert first is not None
    declared = re.findall(r"\$(\w+)", body[:body.index(")") + 1]) if first.group(1).startswith("param(") else []
    if "param(" in body:
        assert first.group(1).startswith("param("), "param() must be the script's first statement"
    for parameter in declared:  # a value is bound, never pasted into a string the script builds
        assert f'"${parameter}' not in body and f"'${parameter}" not in body, parameter


def test_op_binds_values_by_name() -> None:
    script = op("hyperv-state", VMId="1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert script.parameters == {"VMId": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}
    assert "1b4e28ba" not in script.body


def test_the_twins_hyperv_host_answers_every_operation() -> None:
    from patchgate_twin.hyperv_host import MARKER_RE, TwinHypervHost

    class _Twin:
        class lab:  # noqa: N801 - a stand-in for the lab the host model reads
            name, vms, control_vms = "ops", [], []

    host = TwinHypervHost(_Twin(), lambda vm: "hv")
    assert set(SCRIPTS) == host.operations
    assert all(MARKER_RE.match(body) for body in SCRIPTS.values())
