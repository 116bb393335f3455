"""Fixtures: the twin's endpoints served by a small LabHost, and psrp sessions opened against them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from remoting_lab import PASSWORD, USERNAME, LabHost, http_settings

from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.psrp import PsrpSession
from patchgate.remoting.psrp_remoting import PsrpRemoting
from patchgate.secrets.base import Credentials
from patchgate_twin.wsman import TwinEndpoints


@pytest.fixture
def lab_host():
    host = LabHost()
    yield host
    host.close()


@pytest.fixture
def endpoints(lab_host: LabHost):
    eps = TwinEndpoints(lab_host, lambda vm: (USERNAME, PASSWORD))
    yield eps
    eps.stop_all()


@pytest.fixture
def credentials() -> Credentials:
    return Credentials(USERNAME, SecretStr(PASSWORD))


@pytest.fixture
def open_session(endpoints: TwinEndpoints, credentials: Credentials):
    sessions: list[PsrpSession] = []

    def _open(vm: str = "ws2025-a", **overrides: Any) -> PsrpSession:
        port = endpoints.start(vm)
        session = PsrpRemoting(http_settings(**overrides)).open(vm, GuestEndpoint("127.0.0.1", port), credentials)
        sessions.append(session)
        return session

    yield _open
    for session in sessions:
        session.close()
