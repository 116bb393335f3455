"""The server side of a WSUS round on an existing WSUS outside the lab (``wsus.server: {address: ...}``).

No VM lifecycle holds that server and nothing reverts it, so the run itself approves (on a thread of its own, as
the VMs start) and undoes the approval in ``LabRun.finish``, after every VM's lifecycle has ended and before
anything is restored: the same place the run cannot skip for its restores (a failed run, Ctrl-C, SIGTERM). The
ledger records ``wsus_approve`` before the approval and ``wsus_unapprove`` after its undo, so a run killed in
between (SIGKILL) leaves an entry that names the approval still to undo (docs/wsus.md).

The server is reached as ``patchgate promote`` reaches a production WSUS (patchgate.wsus.production): the lab's
remoting, with the server's own port/ssl, and an account from the lab's secrets; the ops are the lab round's own.
Under pytest-xdist the workers share one approval (patchgate.wsus.holders): the last one to leave undoes it.
"""

from __future__ import annotations

import threading
from typing import Any

from patchgate.config import Lab
from patchgate.config.rings import ProductionServer
from patchgate.run.ledger import Ledger
from patchgate.secrets.redact import redactor
from patchgate.wsus.holders import SharedApproval
from patchgate.wsus.ops import Approval, approve, unapprove
from patchgate.wsus.production import OP_TIMEOUT, production_session
from patchgate.wsus.round import WsusRound


def external_server(lab: Lab) -> ProductionServer:
    """The lab's external WSUS as promote's model of a server: the lab's remoting with the server's overrides."""
    external = lab.wsus.external if lab.wsus else None
    assert external is not None
    remoting: Any = lab.remoting
    overrides = {key: value for key, value in (("port", external.port), ("ssl", external.ssl)) if value is not None}
    if overrides:
        remoting = remoting.model_copy(update={"settings": remoting.settings.model_copy(update=overrides)})
    return ProductionServer(address=external.address, hostname=external.hostname, remoting=remoting,
                            secrets=lab.secrets)


def undo_approval(server: ProductionServer, approval: Approval, *, timeout: float = OP_TIMEOUT) -> dict[str, Any]:
    """``wsus-unapprove`` on the external server (the run's end, or ``patchgate reap`` after a SIGKILL)."""
    with production_session(approval.server, server) as session:
        return unapprove(session, approval, timeout=timeout)


class ExternalApproval:
    """Approve once for the run, undo once at its end; ``to_dict`` is the run's evidence of both."""

    def __init__(self, lab: Lab, round_: WsusRound, ledger: Ledger, kb: str,
                 shared: SharedApproval | None = None) -> None:
        assert lab.wsus is not None
        self.name = lab.wsus.server_name
        self.server = external_server(lab)
        self.round = round_
        self.ledger = ledger
        self.kb = kb
        self.group = lab.wsus.group
        self.timeout = max(OP_TIMEOUT, lab.timeouts.capture)
        self.error: str | None = None
        self.undo: dict[str, Any] | None = None
        self.undo_error: str | None = None
        self.shared = shared  # under pytest-xdist: one approval for every worker (patchgate.wsus.holders)
        self.made = False  # this process made the approval (under xdist another worker may have)
        self.holders: list[int] = []  # under xdist: the workers still holding it when this one left
        self._asked = False  # wsus-approve was sent: its outcome may be on the server even if we never saw it
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._approve, name="patchgate-wsus-external", daemon=True)
        self._thread.start()

    def _approve(self) -> None:
        try:
            if self.round.stop.is_set():
                raise RuntimeError("the run stopped before the approval")
            if self.shared is None:
                approval, self.made = self._approve_once(), True
            else:
                approval, self.made = self.shared.join(self._approve_once)
            self.round.approved(approval)
        except BaseException as exc:  # noqa: BLE001 - every client gives up with the reason
            self.error = redactor.redact(str(exc)) or type(exc).__name__
            self.round.failed(self.error)

    def _approve_once(self) -> Approval:
        with production_session(self.name, self.server) as session:
            self.ledger.record("wsus_approve", vm=None, server=self.name, external=True, kb=self.kb,
                               group=self.group)
            self._asked = True
            approval = approve(session, server=self.name, kb=self.kb, group=self.group, timeout=self.timeout)
        self.ledger.record("wsus_approved", server=self.name, external=True, approval=approval.to_dict())
        return approval

    def finish(self) -> None:
        """Undo the approval (after every VM is done). Never raises: the outcome is recorded and shown."""
        if self._thread is not None:
            self._thread.join(self.timeout + 30)
        approval = self.round.approval
        if approval is None and self._asked:
            # the op was sent but its answer never came back: take away what it may have done to the group
            approval = Approval.unknown(self.name, self.kb, self.group)
        if approval is None:
            return
        try:
            if self.shared is not None and self.round.approval is not None:
                self.holders = self.shared.leave(self._undo)
            else:
                self._undo(approval)
        except Exception as exc:  # noqa: BLE001 - said in the evidence and on stderr; nothing reverts it
            self.undo_error = redactor.redact(f"the approval of {approval.kb} for {approval.group} on {self.name} "
                                              f"could not be undone: {exc}")
            self.ledger.record("wsus_unapprove_failed", server=self.name, external=True, kb=approval.kb,
                               group=approval.group, error=self.undo_error)

    def _undo(self, approval: Approval) -> None:
        self.undo = undo_approval(self.server, approval, timeout=self.timeout)
        self.ledger.record("wsus_unapprove", vm=None, server=self.name, external=True, kb=approval.kb,
                           group=approval.group, removed=self.undo.get("Removed"))

    def to_dict(self) -> dict[str, Any]:
        approval = self.round.approval
        undo = self.undo if self.undo is not None else {"error": self.undo_error} if self.undo_error else None
        if undo is None and self.holders:  # under xdist: the last worker to leave undoes it
            undo = {"left_to_workers": self.holders}
        return {"server": self.name, "address": self.server.address, "group": self.group, "kb": self.kb,
                "approval": approval.to_dict() if approval else None, "made_here": self.made, "error": self.error,
                "undo": undo}
