"""A production WSUS server as ``patchgate promote`` sees it: reached over the rings file's remoting and secrets,
read with ``wsus-status`` and changed only with ``wsus-approve`` in production mode (docs/rings.md).

Its approvals are the truth about which ring holds a KB since when: promote reads them back for the soak check
and for ``--status``, and records them as evidence; the state folder's ledger is only a local copy.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from patchgate.config.lab import VmSpec
from patchgate.config.rings import ProductionServer
from patchgate.errors import LabError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting import build_remoting
from patchgate.remoting.base import RemoteSession
from patchgate.remoting.staging import parse_document
from patchgate.secrets.factory import build_secrets
from patchgate.wsus.ops import APPROVE_CONTRACT, listed, wsus_script

STATUS_CONTRACT: dict[str, tuple[type | None, ...]] = {"Kb": (str,), "Server": (str,), "Groups": (list, str, None),
                                                       "Updates": (list, dict, None)}
OP_TIMEOUT = 300.0


@dataclass(frozen=True)
class GroupApproval:
    """One approval of the KB for one computer target group, as WSUS reports it (times in UTC)."""

    group: str
    action: str
    created: dt.datetime
    deadline: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "action": self.action, "created": self.created.isoformat(),
                "deadline": self.deadline.isoformat() if self.deadline else None}


@dataclass(frozen=True)
class KbOnServer:
    """What a WSUS server holds of a KB: its files' digests and the approvals per group."""

    server: str
    kb: str
    groups: list[str]
    files: list[dict[str, Any]]
    approvals: list[GroupApproval]
    updates: int

    def approved(self, groups: list[str]) -> list[GroupApproval]:
        """Install approvals for ``groups``, oldest first."""
        return sorted((a for a in self.approvals if a.group in groups and a.action == "Install"),
                      key=lambda a: a.created)


def _utc(value: Any) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


@contextmanager
def production_session(name: str, server: ProductionServer) -> Iterator[RemoteSession]:
    """A session on the server; its account comes from the server's secrets (``vm_paths`` key: its name)."""
    assert server.remoting is not None and server.secrets is not None  # RingsConfig.check_complete
    secrets = build_secrets(server.secrets)
    try:
        # the secrets providers look accounts up per VM: the server stands in as one, under its own name
        credentials = secrets.remoting_credentials(VmSpec(name=name, role="wsus-server", snapshot="production"))
    finally:
        secrets.close()
    endpoint = GuestEndpoint(address=server.address, hostname=server.hostname or server.address)
    session = build_remoting(server.remoting).open(name, endpoint, credentials)
    try:
        yield session
    finally:
        session.close()


def read_kb(session: RemoteSession, *, server: str, kb: str) -> KbOnServer:
    doc = parse_document(session.run(wsus_script("wsus-status", Kb=kb), timeout=OP_TIMEOUT), "wsus-status",
                         STATUS_CONTRACT, server, LabError)
    files: list[dict[str, Any]] = []
    approvals: list[GroupApproval] = []
    updates = [u for u in listed(doc["Updates"]) if isinstance(u, dict)]
    for update in updates:
        files += [f for f in listed(update.get("Files")) if isinstance(f, dict)]
        for entry in listed(update.get("Approvals")):
            created = _utc(entry.get("CreationDate")) if isinstance(entry, dict) else None
            if created is None or not entry.get("Group"):
                continue
            approvals.append(GroupApproval(group=str(entry["Group"]), action=str(entry.get("Action", "")),
                                           created=created, deadline=_utc(entry.get("Deadline"))))
    return KbOnServer(server=server, kb=str(doc["Kb"]), groups=[str(g) for g in listed(doc["Groups"])],
                      files=files, approvals=approvals, updates=len(updates))


def approve_for_group(session: RemoteSession, *, server: str, kb: str, group: str,
                      deadline: dt.datetime | None) -> dict[str, Any]:
    """Approve the KB for one existing group (never created, targeting mode untouched), with the deadline."""
    script = wsus_script("wsus-approve", Kb=kb, Group=group, Production=True,
                         Deadline=deadline.astimezone(dt.UTC).isoformat() if deadline else "")
    return parse_document(session.run(script, timeout=OP_TIMEOUT), "wsus-approve", APPROVE_CONTRACT, server,
                          LabError)
