"""One run's WSUS round, shared by its lifecycles: the server VM approves the candidate for the lab's group, the
other VMs wait for that, install what they are offered and say when they are done, and the server then undoes
the approval. Every wait is bounded and gives up when the run stops."""

from __future__ import annotations

import threading
import time

from patchgate.config.install import WsusSettings
from patchgate.errors import LabError, LabTimeout
from patchgate.wsus.ops import Approval

POLL = 0.5  # seconds between looks at the run's stop event while waiting


class WsusRound:
    def __init__(self, settings: WsusSettings, clients: list[str], *, server_in_run: bool,
                 stop: threading.Event) -> None:
        self.settings = settings
        self.server = settings.server_name
        self.server_in_run = server_in_run
        self.stop = stop
        self.approval: Approval | None = None
        self.failure: str | None = None
        self.undone: dict | None = None
        self._pending = set(clients)
        self._changed = threading.Condition()

    # ------------------------------------------------------------ the server's side

    def approved(self, approval: Approval) -> None:
        with self._changed:
            self.approval = approval
            self._changed.notify_all()

    def failed(self, reason: str) -> None:
        with self._changed:
            if self.approval is None and self.failure is None:
                self.failure = reason
            self._changed.notify_all()

    def wait_clients(self, timeout: float) -> list[str]:
        """Until every client has installed (or broken); returns those still installing when ``timeout`` ran
        out or the run stopped."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending and not self.stop.is_set() and time.monotonic() < deadline:
                self._changed.wait(min(POLL, max(0.0, deadline - time.monotonic())))
            return sorted(self._pending)

    # ------------------------------------------------------------ a client's side

    def wait_approval(self, vm: str, timeout: float) -> Approval:
        if not self.server_in_run:
            raise LabError(f"the lab's WSUS server {self.server} is not part of this run (--vm/--role/--ring, or "
                           "another pytest-xdist worker): nothing approves the candidate", vm=vm,
                           step="wsus_wait_approval")
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.approval is None and self.failure is None:
                if self.stop.is_set():
                    raise LabError("the run stopped before WSUS approved the candidate", vm=vm)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabTimeout(f"WSUS server {self.server} did not approve the candidate within {timeout:g}s",
                                     vm=vm)
                self._changed.wait(min(POLL, left))
            if self.approval is None:
                raise LabError(f"WSUS server {self.server} could not approve the candidate: {self.failure}", vm=vm)
            return self.approval

    def finished(self, vm: str, error: LabError | None = None) -> None:
        """A VM's part is over (idempotent): a client is done; a server that never approved makes every client
        give up at once."""
        if vm == self.server:
            self.failed(f"its VM broke before approving ({error})" if error else "its VM never approved")
            return
        with self._changed:
            self._pending.discard(vm)
            self._changed.notify_all()

    @property
    def url(self) -> str:
        """WUServer/WUStatusServer for the clients: the lab's ``wsus.url``, else what the server reported."""
        assert self.approval is not None
        return self.settings.url or self.approval.url
