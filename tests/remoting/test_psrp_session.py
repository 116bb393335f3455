"""pypsrp (for real) against the twin's WSMan endpoint: pools, pipelines, reconnects, timeouts."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from pydantic import SecretStr
from support.waiting import wait_until

from patchgate.errors import LabTimeout, RemotingAuthError, RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.base import Script
from patchgate.remoting.psrp_remoting import PsrpRemoting
from patchgate.secrets.base import Credentials

from remoting_lab import PASSWORD, USERNAME, http_settings


def _doc(result) -> dict:
    return json.loads(result.text)


def test_run_passes_parameters_as_named_parameters(open_session, lab_host):
    session = open_session()
    value = "it's $(Remove-Item C:\\) `\"quoted\""
    result = session.run(Script("echo", "param($Name, $Count, $Flags)\n$Name", {"Name": value, "Count": 3,
                                                                               "Flags": ["a", "b"]}))
    doc = _doc(result)
    assert result.errors == []
    assert doc["vm"] == "ws2025-a"
    assert doc["parameters"] == {"Name": value, "Count": 3, "Flags": ["a", "b"]}
    # the value travelled as a parameter, never inside the script text
    vm, statements, _ = lab_host.calls[-1]
    assert value not in statements[0].script


def test_each_run_is_one_pipeline_on_one_pool(open_session, endpoints):
    session = open_session()
    endpoints.endpoint("ws2025-a").reset_counters()
    for i in range(4):
        session.run(Script(f"probe-{i}", "Get-Date"))
    counters = endpoints.counters("ws2025-a")
    assert counters["pipelines"] == 4
    assert counters["Command"] == 4
    assert counters.get("Create", 0) == 0  # the pool opened once, before the reset


def test_error_records_and_failed_pipelines(open_session):
    session = open_session()
    result = session.run(Script("bad", "Write-Error 'the service is gone'"))
    assert result.had_errors
    assert "the service is gone" in result.errors[0]


def test_wrong_password_names_the_host_and_hides_the_password(endpoints):
    port = endpoints.start("ws2025-b")
    remoting = PsrpRemoting(http_settings())
    with pytest.raises(RemotingAuthError) as info:
        remoting.open("ws2025-b", GuestEndpoint("127.0.0.1", port, hostname="ws2025-b.lab.example"),
                      Credentials(USERNAME, SecretStr("not-the-password")))
    message = str(info.value)
    assert "ws2025-b.lab.example" in message
    assert USERNAME in message
    assert "not-the-password" not in message and PASSWORD not in message
    assert endpoints.counters("ws2025-b")["auth_failures"] == 1


def test_connection_reset_mid_pipeline_reconnects_once_then_fails(open_session, endpoints, lab_host):
    session = open_session()
    lab_host.always_fault = "connection-reset"
    with pytest.raises(RemotingError) as info:
        session.run(Script("capture", "Get-Date"))
    assert "127.0.0.1" in str(info.value) and "after one reconnect" in str(info.value)
    counters = endpoints.counters("ws2025-a")
    assert counters["Create"] == 2  # the first pool and exactly one reconnect
    assert counters["injected_connection_reset"] == 2
    assert session.reconnects == 1


def test_one_reset_is_healed_by_the_reconnect(open_session, endpoints, lab_host):
    session = open_session()
    lab_host.faults.append("connection-reset")
    result = session.run(Script("capture", "Get-Date"))
    assert _doc(result)["vm"] == "ws2025-a"
    assert endpoints.counters("ws2025-a")["Create"] == 2
    assert session.reconnects == 1


def test_a_pool_the_host_forgot_is_reopened(open_session, endpoints):
    session = open_session()
    assert endpoints.endpoint("ws2025-a").drop_shells() == 1  # WinRM restarted / shell idle-timed out
    result = session.run(Script("capture", "Get-Date"))
    assert _doc(result)["vm"] == "ws2025-a"
    assert session.reconnects == 1
    assert endpoints.counters("ws2025-a")["faults"] == 1  # the "shell not found" answer


def test_wsman_fault_is_a_remoting_error_with_the_code(open_session, lab_host):
    session = open_session()
    lab_host.faults.append("wsman-fault")
    with pytest.raises(RemotingError) as info:
        session.run(Script("capture", "Get-Date"))
    assert "WSMan fault 0x" in str(info.value)
    assert "injected by test" in str(info.value)
    # the pool is still usable afterwards
    assert _doc(session.run(Script("again", "Get-Date")))["vm"] == "ws2025-a"


def test_auth_failure_mid_session_is_an_auth_error(open_session, lab_host):
    session = open_session()
    lab_host.faults.append("auth-failure")
    with pytest.raises(RemotingAuthError):
        session.run(Script("capture", "Get-Date"))


def test_two_megabyte_script_arrives_whole(open_session, endpoints, lab_host):
    session = open_session()
    body = "# padding\n" + ("$x = 'abcdefghijklmnopqrstuvwxyz0123456789'\n" * 52000)
    assert len(body) > 2_000_000
    result = session.run(Script("big", body))
    doc = _doc(result)
    assert doc["script_len"] == len(body)
    import hashlib
    assert doc["script_sha256"] == hashlib.sha256(body.encode()).hexdigest()
    assert endpoints.counters("ws2025-a")["Send"] >= 3  # fragments beyond the first travel as Send (~500 KB each)


def test_receive_long_polls_until_the_pipeline_finishes(open_session, endpoints, lab_host):
    session = open_session(operation_timeout=1, read_timeout=10)
    lab_host.gate = threading.Event()
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("result", session.run(Script("slow", "Get-Date"))))
    worker.start()
    wait_until(lambda: endpoints.counters("ws2025-a").get("receive_timeouts", 0) >= 2,
               "the endpoint never answered an expired long-poll", timeout=20)
    lab_host.gate.set()
    worker.join(20)
    assert _doc(outcome["result"])["vm"] == "ws2025-a"
    assert session.reconnects == 0  # an OperationTimeout answer is normal, not a dropped pool


def test_script_timeout_stops_the_pipeline(open_session, endpoints, lab_host):
    session = open_session(operation_timeout=1, read_timeout=10)
    lab_host.gate = threading.Event()
    try:
        with pytest.raises(LabTimeout) as info:
            session.run(Script("stuck", "Get-Date"), timeout=1.5)
        assert "'stuck'" in str(info.value) and "ws2025-a" in str(info.value)
        assert endpoints.counters("ws2025-a")["Signal"] >= 1  # the pipeline was stopped on the host
    finally:
        lab_host.gate.set()


def test_hung_host_past_read_timeout_is_a_lab_timeout(open_session, endpoints, lab_host):
    session = open_session(operation_timeout=1, read_timeout=2)
    lab_host.always_fault = "hang"
    with pytest.raises(LabTimeout) as info:
        session.run(Script("capture", "Get-Date"))
    assert "read_timeout" in str(info.value)
    assert endpoints.counters("ws2025-a")["injected_hang"] == 2  # first try and the one reconnect


def test_transport_loggers_never_see_scripts_or_passwords(open_session, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("pypsrp", "pypsrp.wsman", "pypsrp.powershell", "urllib3", "urllib3.connectionpool"):
        logging.getLogger(name).setLevel(logging.DEBUG)  # even if someone turns them up...
    session = open_session(vm="ws2025-log")
    marker = "SECRET-SCRIPT-BODY-7d1f"
    session.run(Script("marker", f"'{marker}'", {"Token": PASSWORD}))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in text
    # pypsrp logs message dumps at DEBUG; whatever passes is redacted, and the password never appears
    from patchgate.remoting.logging_hygiene import quiet_transport_loggers
    import patchgate.remoting.logging_hygiene as hygiene
    hygiene._done = False
    quiet_transport_loggers()
    caplog.clear()
    session.run(Script("marker", f"'{marker}'", {"Token": PASSWORD}))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert marker not in text and PASSWORD not in text
    assert logging.getLogger("pypsrp.wsman").getEffectiveLevel() == logging.WARNING


def test_many_vms_at_once_each_on_its_own_listener(endpoints, credentials):
    vms = [f"ws2025-{i:02d}" for i in range(8)]
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(vm: str) -> None:
        try:
            port = endpoints.start(vm)
            with PsrpRemoting(http_settings()).open(vm, GuestEndpoint("127.0.0.1", port), credentials) as session:
                results[vm] = [json.loads(session.run(Script(f"p{i}", "Get-Date")).text)["vm"] for i in range(5)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(vm,)) for vm in vms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len({endpoints.port(vm) for vm in vms}) == len(vms)
    for vm in vms:
        assert results[vm] == [vm] * 5
        counters = endpoints.counters(vm)
        assert counters["pipelines"] == 5 and counters["Create"] == 1 and counters["Delete"] == 1


def test_is_alive_reflects_the_host_side_shell(open_session, endpoints):
    session = open_session()
    assert session.is_alive()
    endpoints.endpoint("ws2025-a").drop_shells()
    assert not session.is_alive()


def test_idle_shells_expire_on_the_host(endpoints, credentials, lab_host):
    from patchgate_twin.wsman import WSManEndpoint
    endpoint = WSManEndpoint("ws2025-idle", lab_host, lambda: (USERNAME, PASSWORD), idle_timeout=0.5)
    port = endpoint.start()
    try:
        session = PsrpRemoting(http_settings()).open("ws2025-idle", GuestEndpoint("127.0.0.1", port), credentials)
        # the host forgets the shell once it has been idle 0.5 s
        wait_until(lambda: endpoint.expire_idle_shells() == 0, "the idle shell never expired", timeout=5)
        assert json.loads(session.run(Script("after-idle", "Get-Date")).text)["vm"] == "ws2025-idle"
        assert session.reconnects == 1
        session.close()
    finally:
        endpoint.stop()


def test_vms_on_their_own_threads_all_finish_with_their_own_answers(endpoints, credentials):
    vms = [f"ws2025-{i:02d}" for i in range(6)]
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(vm: str) -> None:
        try:
            port = endpoints.start(vm)
            with PsrpRemoting(http_settings()).open(vm, GuestEndpoint("127.0.0.1", port), credentials) as session:
                results[vm] = [json.loads(session.run(Script(f"p{i}", "Get-Date")).text)["vm"] for i in range(3)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(vm,)) for vm in vms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {vm: [vm] * 3 for vm in vms}
