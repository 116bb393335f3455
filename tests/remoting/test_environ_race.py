"""pytest rewrites PYTEST_CURRENT_TEST in os.environ at every phase of every test, in the main thread, while the
lab's threads talk to their hosts; requests reads the whole environment on each request that trusts it, and a key
deleted during that walk raises KeyError (pytest-dev/pytest#10876). A run must never turn that into lab trouble:
the PSRP session stops consulting the environment once its pool is open, and a KeyError out of os.environ is
retried like a dropped connection (nothing of that request was sent)."""

from __future__ import annotations

import os

from support.environ_churn import environ_churn

from patchgate.environ_race import raised_reading_environ, settled_session
from patchgate.remoting.base import Script
from patchgate.remoting.psrp import PsrpSession


def test_scripts_run_while_another_thread_rewrites_the_environment(open_session) -> None:
    session = open_session()
    with environ_churn():
        results = [session.run(Script(f"probe-{i}", "Get-Date")) for i in range(150)]
    assert all(not r.errors for r in results)
    assert session.reconnects == 0  # the environment is no longer read, so nothing had to be retried


def _environ_key_error() -> KeyError:
    try:
        os.environ["PATCHGATE_TEST_NEVER_SET"]
    except KeyError as exc:
        return exc
    raise AssertionError("the variable is set")


def _dict_key_error() -> KeyError:
    try:
        {}["PATCHGATE_TEST_NEVER_SET"]
    except KeyError as exc:
        return exc
    raise AssertionError("unreachable")


def test_only_a_key_error_out_of_os_environ_counts_as_the_race() -> None:
    assert raised_reading_environ(_environ_key_error())
    assert not raised_reading_environ(_dict_key_error())
    assert not raised_reading_environ(ValueError("PATCHGATE_TEST_NEVER_SET"))
    assert PsrpSession._retryable(_environ_key_error()) and not PsrpSession._retryable(_dict_key_error())


def test_a_settled_session_keeps_the_environment_s_proxy_and_ca_bundle(monkeypatch, tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session, verify = settled_session("https://vault.corp.example:8200", True)
    assert session.proxies.get("https") == "http://proxy.corp.example:3128" and verify == str(bundle)
    assert session.trust_env is False  # and it is never read again
    _, verify_off = settled_session("https://vault.corp.example:8200", False)
    assert verify_off is False  # an explicit "off" is never overridden by the environment
