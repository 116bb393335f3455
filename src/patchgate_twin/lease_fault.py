"""Twin fault 'lease-held': "another run" takes the faulty VMs' leases first and keeps them until this run ends.

The leases are real ones, contended through the lab's own lease backend, so the harness meets exactly what it
would meet if a colleague's run held those VMs. Kept apart from the twin's hosts because the leases belong to
the harness's side of the lab (its Vault session or lease folder), wherever the twin's hosts are served from.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from patchgate.errors import LeaseError
from patchgate_twin.faults import Fault

log = logging.getLogger(__name__)


class LeaseHeldFault:
    def __init__(self, faults_by_vm: Mapping[str, Mapping[str, Fault]]) -> None:
        self._faulty = {name for name, faults in faults_by_vm.items() if "lease-held" in faults}
        self._taken: set[str] = set()
        self.held: list[Any] = []

    def hold(self, manager: Any, vm_names: list[str]) -> None:
        """Before the run leases ``vm_names``, take the faulty ones' leases as 'other-run-<vm>'."""
        for name in vm_names:
            if name not in self._faulty or name in self._taken:
                continue
            self._taken.add(name)
            try:
                self.held.append(manager.acquire([name], f"other-run-{name}", timeout=5))
            except LeaseError as exc:
                log.warning("fault lease-held: could not take the lease of %s first: %s", name, exc)

    def release(self) -> None:
        """The "other run" ends with this one."""
        held, self.held = self.held, []
        for lease in held:
            try:
                lease.release()
            except Exception as exc:  # noqa: BLE001 - they expire on their own
                log.warning("could not release a lease held by the twin's lease-held fault: %s", exc)
