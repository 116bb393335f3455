"""What the twin's own process serves: the hypervisor operations and the hosts' WinRM listeners of one twin lab.

A real lab is other machines: their reverts, boots and WinRM listeners cost the harness nothing but the round
trips. Served from its own process (twin/process.py), the twin behaves the same way: the psrpcore work of every
WSMan request runs beside the harness, not under its interpreter lock. Everything here is called through a
``multiprocessing`` manager, so arguments and results are small and picklable (names, ports, counters), never
host state.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import TYPE_CHECKING

from patchgate.config.lab import Lab
from patchgate_twin.lab import TwinDisks, TwinLab
from patchgate_twin.shell_impl import TwinShell
from patchgate_twin.wsman import TwinEndpoints

if TYPE_CHECKING:
    from patchgate_twin.catalog import Catalog


class TwinService:
    """One twin lab, its shell and its listeners, inside the twin's process."""

    def __init__(self, lab: Lab, catalog: "Catalog") -> None:
        settings = lab.hypervisor.settings
        self.stop_event = threading.Event()
        self.twin = TwinLab(lab, catalog, latency=settings.latency, stop=self.stop_event,  # type: ignore[union-attr]
                            disks=TwinDisks(lab.name))
        self._credentials: dict[str, tuple[str, str]] = {}
        self._credentials_lock = threading.Lock()
        self.endpoints = TwinEndpoints(TwinShell(self.twin), self._host_credentials,
                                       latency=settings.latency.wsman_round_trip)  # type: ignore[union-attr]

    def _host_credentials(self, vm: str) -> tuple[str, str]:
        with self._credentials_lock:
            account = self._credentials.get(vm)
        return account or ("", secrets.token_urlsafe(32))  # no account known yet: every login is refused

    # ------------------------------------------------------------ hypervisor

    def ensure_snapshot(self, vm: str) -> None:
        self.twin.ensure_snapshot(vm)

    def revert(self, vm: str) -> None:
        self.twin.revert(vm)
        self.endpoints.drop_shells(vm)  # a reverted guest has never heard of the shells opened before

    def power_on(self, vm: str) -> None:
        self.twin.power_on(vm)

    def power_state(self, vm: str) -> str:
        return str(self.twin.power_state(vm))

    def wait_ready(self, vm: str, timeout: float) -> None:
        self.twin.wait_ready(vm, timeout)

    def reboot(self, vm: str) -> None:
        self.twin.reboot(vm)
        self.endpoints.drop_shells(vm)

    def keep_snapshot(self, vm: str, name: str) -> None:
        self.twin.keep_snapshot(vm, name)

    # ------------------------------------------------------------ listeners

    def start_endpoint(self, vm: str, username: str | None, password: str | None) -> int:
        """Start (or keep) the VM's listener; the account it accepts is the one the lab's secrets hold now
        (None: the harness could not read it, the host keeps the one it had)."""
        if username is not None and password is not None:
            with self._credentials_lock:
                self._credentials[vm] = (username, password)
        return self.endpoints.start(vm)

    def counters(self, vm: str) -> dict[str, int]:
        return self.endpoints.counters(vm)

    def reset_counters(self, vm: str) -> None:
        self.endpoints.reset_counters(vm)

    def stop_endpoints(self) -> None:
        self.endpoints.stop_all()

    # ------------------------------------------------------------ lifetime

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        """The run is stopping: waits inside the twin (a hung install, a boot) end now; restores still work."""
        self.stop_event.set()

    def close(self) -> None:
        """Stop the listeners and write the disks changed since their last write."""
        self.endpoints.stop_all()
        self.twin.close()
        record_cpu()


CPU_DIR_ENV = "PATCHGATE_TWIN_CPU_DIR"


def record_cpu() -> None:
    """For benchmarks (``$PATCHGATE_TWIN_CPU_DIR``): the CPU this twin process used, so that a measurement can
    tell the harness's CPU from the simulated lab's (a real lab's machines spend theirs elsewhere), and its peak
    resident memory (KiB, Linux's ru_maxrss)."""
    folder = os.environ.get(CPU_DIR_ENV)
    if not folder:
        return
    import json
    import resource
    from pathlib import Path

    usage = resource.getrusage(resource.RUSAGE_SELF)
    path = Path(folder) / f"twin-{os.getpid()}.json"
    path.write_text(json.dumps({"user_s": usage.ru_utime, "sys_s": usage.ru_stime, "maxrss_kib": usage.ru_maxrss}),
                    encoding="utf-8")
