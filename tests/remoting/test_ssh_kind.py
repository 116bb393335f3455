"""The ssh remoting kind against a real sshd on 127.0.0.1 whose powershell forwards to a twin endpoint."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import SecretStr
from remoting_lab import PASSWORD, USERNAME
from sshd_lab import sshd_available, start_sshd, stop_sshd

from patchgate.config.lab import SshSettings
from patchgate.errors import RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.base import Script
from patchgate.remoting.ssh import SshRemoting, build_stdin, parse_output, parse_stdin, render_output
from patchgate_pytest.testinfra_backend import testinfra_host
from patchgate.secrets.base import Credentials
from patchgate_twin import filecopy

VM = "ws2025-ssh"


@pytest.fixture
def sshd(tmp_path, endpoints):
    if not sshd_available():
        if os.environ.get("CI") == "true":
            pytest.fail("sshd (openssh-server) is required in CI: apt-get install -y openssh-server")
        pytest.skip("sshd (openssh-server) is not installed")
    port = endpoints.start(VM)
    shim_config = tmp_path / "shim.json"
    shim_config.write_text(json.dumps({"address": "127.0.0.1", "port": port, "username": USERNAME,
                                       "password": PASSWORD}))
    shim_config.chmod(0o600)
    server = start_sshd(tmp_path / "sshd", shim_config)
    yield server
    stop_sshd(server)


def _session(sshd, **overrides):
    settings = SshSettings(port=sshd.port, known_hosts=sshd.known_hosts, identity_file=sshd.identity_file,
                           connect_timeout=10, command_timeout=60, **overrides)
    return SshRemoting(settings).open(VM, GuestEndpoint("127.0.0.1"), Credentials(sshd.user, SecretStr("")))


def test_stdin_protocol_round_trips():
    data = build_stdin("param($A)\n$A", {"A": "it's \"x\"\n$(y)"}, positional=["C:\\d", False], inputs=["aGk=", ""])
    body, named, positional, inputs = parse_stdin(data)
    assert body == "param($A)\n$A" and named == {"A": "it's \"x\"\n$(y)"}
    assert positional == ["C:\\d", False] and inputs == ["aGk=", ""]
    assert parse_output(render_output(["a\nb", "ü"], ["boom"])) == (["a\nb", "ü"], ["boom"])


def test_ssh_run_answers_from_the_twin(sshd, endpoints, lab_host):
    with _session(sshd) as session:
        result = session.run(Script("echo", "param($Name)\n$Name", {"Name": "O'Brien; rm -rf /"}))
    doc = json.loads(result.text)
    assert doc["vm"] == VM
    assert doc["parameters"] == {"Name": "O'Brien; rm -rf /"}
    assert endpoints.counters(VM)["pipelines"] == 1
    assert "O'Brien" not in lab_host.calls[-1][1][0].script


def test_ssh_error_records(sshd):
    with _session(sshd) as session:
        result = session.run(Script("bad", "Write-Error 'disk full'"))
    assert result.errors and "disk full" in result.errors[0]


def test_ssh_copy_round_trip(sshd, lab_host, tmp_path):
    data = os.urandom(2_500_000)
    local = tmp_path / "kb.msu"
    local.write_bytes(data)
    remote = r"C:\ProgramData\patchgate\staging\kb.msu"
    with _session(sshd) as session:
        assert session.copy_file(local, remote) == remote
    assert lab_host.read(VM, filecopy.key(remote)) == data


def test_unknown_host_key_is_refused(sshd, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    settings = SshSettings(port=sshd.port, known_hosts=empty, identity_file=sshd.identity_file, connect_timeout=10)
    remoting = SshRemoting(settings)
    assert remoting.cert_validation is True
    with pytest.raises(RemotingError) as info:
        remoting.open(VM, GuestEndpoint("127.0.0.1"), Credentials(sshd.user, SecretStr("")))
    assert "known_hosts" in str(info.value) and "127.0.0.1" in str(info.value)


def test_testinfra_over_ssh(sshd):
    with _session(sshd) as session:
        host = testinfra_host(session)
        result = host.run("Get-Service WinRM")
    assert result.rc == 0 and "WinRM" in result.stdout
