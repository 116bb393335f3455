"""Sessions to the Hyper-V hosts: a few PSRP runspace pools per host, shared by the run's VM lifecycles.

A restore holds its session while the host's job runs (up to ``job_timeout``), so one pool per host would queue
every other VM behind it; one per VM would exceed WinRM's shells-per-user quota on a large lab. Each host gets
up to ``per_host`` sessions, opened on demand and handed out one caller at a time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from patchgate.config.lab import PsrpSettings
from patchgate.errors import HypervisorError, LabError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.hypervisors.hyperv.scripts import op
from patchgate.hypervisors.hyperv.settings import HypervHost
from patchgate.secrets.base import Credentials

log = logging.getLogger("patchgate.hypervisors.hyperv")


class HostPool:
    """The sessions to one host; ``run(op, ...)`` returns the op's JSON document."""

    def __init__(self, host: HypervHost, remoting: PsrpSettings, credentials: Credentials, *,
                 per_host: int) -> None:
        self.host = host
        self.settings = remoting.model_copy(update={k: v for k, v in (("port", host.port), ("ssl", host.ssl))
                                                    if v is not None})
        self._credentials = credentials
        self._free: list[Any] = []
        self._open = 0
        self._limit = per_host
        self._cond = threading.Condition()
        self._closed = False

    @property
    def name(self) -> str:
        return self.host.name

    def open_session(self, label: str | None = None) -> Any:
        """A new, connected PSRP session to this host (the pool's own, or one a PowerShell Direct guest keeps)."""
        from patchgate.remoting.psrp import PsrpSession

        endpoint = GuestEndpoint(address=self.host.address or self.host.name, port=self.host.port,
                                 hostname=self.host.name)
        session = PsrpSession(label or f"hyperv-host {self.host.name}", endpoint, self._credentials, self.settings)
        session.connect()
        return session

    @contextmanager
    def session(self) -> Iterator[Any]:
        with self._cond:
            while not self._free and self._open >= self._limit:
                self._cond.wait()
            if self._closed:
                raise HypervisorError("the run closed its Hyper-V sessions", step="hyperv", vm=None)
            session = self._free.pop() if self._free else None
            if session is None:
                self._open += 1
        try:
            if session is None:
                try:
                    session = self.open_session()
                except BaseException:
                    with self._cond:
                        self._open -= 1
                        self._cond.notify()
                    raise
            yield session
        finally:
            if session is not None:
                with self._cond:
                    closed = self._closed
                    if not closed:
                        self._free.append(session)
                    self._cond.notify()
                if closed:  # the run closed the pool while this call ran: nobody will take the session again
                    session.close()

    def run(self, name: str, *, vm: str | None, step: str, timeout: float | None = None,
            **parameters: object) -> dict[str, Any]:
        """Run op ``name`` on this host; its errors and unreadable output are HypervisorErrors naming the host."""
        try:
            with self.session() as session:
                result = session.run(op(name, **parameters), timeout=timeout)
        except LabError as exc:
            raise HypervisorError(f"Hyper-V host {self.name}: {exc.detail}", vm=vm, step=step,
                                  host=self.name) from None
        if result.errors or not result.output:
            why = "; ".join(result.errors) or "no output"
            raise HypervisorError(f"Hyper-V host {self.name}: {name} failed: {why}", vm=vm, step=step)
        try:
            doc = json.loads(result.output[-1])
        except ValueError:
            raise HypervisorError(f"Hyper-V host {self.name}: {name} printed no JSON document", vm=vm,
                                  step=step) from None
        if not isinstance(doc, dict):
            raise HypervisorError(f"Hyper-V host {self.name}: {name} printed {type(doc).__name__}, not an object",
                                  vm=vm, step=step)
        return doc

    def close(self) -> None:
        with self._cond:
            self._closed = True
            sessions, self._free = self._free, []
            self._cond.notify_all()
        for session in sessions:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing one session must not keep the others open
                log.debug("closing a session to %s failed", self.name, exc_info=True)
