"""PowerShell Direct (``remoting.kind: psdirect``): the guests' sessions run through their Hyper-V host.

For guests the harness has no network path to. The harness talks PSRP to the VM's host (one session of its own per
guest, so the guest's PSSession can live in that session's runspace), the host talks to the guest over the VMBus:
``New-PSSession -VMId -Credential`` once, ``Invoke-Command -Session`` per script, ``Copy-Item -ToSession`` per file
(staged on the host first, removed once copied). The guest's credentials go from the secrets provider to the host
as parameters of the one script that opens the session, never into a script's text, a log or a report.
"""

from __future__ import annotations

import ntpath
import threading
from pathlib import Path
from typing import Any

from patchgate.hypervisors.hyperv.psdirect_settings import PsdirectSettings
from patchgate.errors import LabError, RemotingAuthError, RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.hypervisors.hyperv.scripts import NO_SESSION, op
from patchgate.remoting.base import Script, ScriptResult, SessionIdentity, result_json
from patchgate.secrets.base import Credentials

CREDENTIAL_REFUSED = ("credential is invalid", "user name or password is incorrect", "logon failure")


class PsdirectSession(SessionIdentity):
    """One guest's PowerShell Direct session, inside a PSRP session to its host. Calls are serialised."""

    def __init__(self, vm_name: str, pool: Any, vm_id: str, credentials: Credentials,
                 settings: PsdirectSettings) -> None:
        host = pool.host
        super().__init__(vm_name, GuestEndpoint(address=host.address or host.name, hostname=vm_name), credentials,
                         port=pool.settings.port or (5986 if pool.settings.ssl else 5985),
                         staging_dir=settings.staging_dir,
                         cert_validation=bool(pool.settings.ssl and pool.settings.cert_validation))
        self.pool = pool
        self.host_entry = host
        self.vm_id = vm_id
        self.settings = settings
        self._host_session: Any = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"PsdirectSession(vm={self.vm!r}, via={self.host_entry.name!r})"

    def connect(self) -> None:
        """A PSRP session of its own to the VM's host, then the guest's PowerShell Direct session in it."""
        with self._lock:
            if self._host_session is None:
                self._host_session = self.pool.open_session(f"{self.vm} via {self.host_entry.name}")
            self._open_guest()

    def _open_guest(self) -> None:
        result = self._host_session.run(op("psdirect-open", VMId=self.vm_id, UserName=self._credentials.username,
                                           Password=self._credentials.password.get_secret_value()))
        if result.errors:
            why = "; ".join(result.errors)
            error = RemotingAuthError if any(t in why.lower() for t in CREDENTIAL_REFUSED) else RemotingError
            raise error(f"PowerShell Direct to VM {self.vm_id} on {self.host_entry.name} refused: {why}",
                        vm=self.vm, host=self.host_entry.name)

    def run(self, script: Script, *, timeout: float | None = None) -> ScriptResult:
        with self._lock:
            self.pipelines += 1
            result = self._through_host(op("psdirect-run", VMId=self.vm_id, Body=script.body,
                                           Parameters=dict(script.parameters)), timeout)
            return ScriptResult(name=script.name, output=result.output, errors=result.errors)

    def copy_file(self, source: Path, destination: str, *, timeout: float | None = None) -> str:
        """To the host with pypsrp's copy script (its SHA-1 check), then into the guest with Copy-Item -ToSession."""
        with self._lock:
            self._ensure()
            on_host = ntpath.join(self.settings.host_staging_dir, self.vm_id, Path(source).name)
            self._host_session.copy_file(Path(source), on_host, timeout=timeout)
            done = self._through_host(op("psdirect-copy", VMId=self.vm_id, HostPath=on_host,
                                         Destination=destination), timeout)
            if done.errors:
                raise RemotingError(f"copying {Path(source).name} into the guest failed: {'; '.join(done.errors)}",
                                    vm=self.vm, host=self.host_entry.name)
            return str(result_json(done).get("Path") or destination)

    def _ensure(self) -> None:
        if self._host_session is None:
            self.connect()

    def _through_host(self, script: Script, timeout: float | None) -> ScriptResult:
        """Run on the host; a host session that lost the guest's PSSession (it reconnected) opens it once more."""
        self._ensure()
        result = self._host_session.run(script, timeout=timeout)
        if any(NO_SESSION in e for e in result.errors):
            self.reconnects += 1
            self._open_guest()
            result = self._host_session.run(script, timeout=timeout)
        return result

    def close(self) -> None:
        with self._lock:
            session, self._host_session = self._host_session, None
        if session is None:
            return
        try:
            session.run(op("psdirect-close", VMId=self.vm_id), timeout=30)
        except LabError:
            pass  # the host session is closed next anyway, and the guest's PSSession with it
        finally:
            session.close()


class PsdirectRemoting:
    """``Remoting`` through the Hyper-V provider's hosts (built by the hyperv lab kind, not by the engine's table)."""

    kind = "psdirect"

    def __init__(self, hypervisor: Any, settings: PsdirectSettings) -> None:
        self.hypervisor = hypervisor
        self.settings = settings
        self.cert_validation = bool(settings.host.ssl and settings.host.cert_validation)

    def prepare(self) -> None:
        return None

    def open(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials) -> PsdirectSession:
        pool, vm_id = self.hypervisor.located(vm_name)
        session = PsdirectSession(vm_name, pool, vm_id, credentials, self.settings)
        session.connect()
        return session
