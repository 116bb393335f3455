"""testinfra's Host over a psrp session to the twin endpoint."""

from __future__ import annotations

from patchgate_pytest.testinfra_backend import ps_quote, testinfra_host


def test_host_runs_a_command_over_psrp(open_session, endpoints):
    session = open_session()
    host = testinfra_host(session)
    result = host.run("Get-Service WinRM")
    assert result.rc == 0 and result.succeeded
    assert "WinRM" in result.stdout and "Running" in result.stdout
    assert host.backend.get_connection_type() == "patchgate-psrp"
    assert endpoints.counters("ws2025-a")["pipelines"] == 1


def test_errors_give_rc_1_and_stderr(open_session):
    host = testinfra_host(open_session())
    result = host.run("Write-Error 'no such service'")
    assert result.rc == 1 and result.failed
    assert "no such service" in result.stderr


def test_arguments_are_single_quoted(open_session, lab_host):
    host = testinfra_host(open_session())
    host.run("Get-Item -LiteralPath %s", "C:\\it's $(here)")
    script = lab_host.calls[-1][1][0].script
    assert script == "Get-Item -LiteralPath 'C:\\it''s $(here)'"
    assert ps_quote("a\u2019b") == "'a\u2019\u2019b'"
