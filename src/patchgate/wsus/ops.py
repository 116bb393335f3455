"""The three WSUS op scripts and the documents they print (contracts in each script's header, docs/wsus.md).

``wsus-approve`` and ``wsus-unapprove`` run on the lab's WSUS server, ``wsus-client`` on each VM it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from patchgate.errors import InstallError, LabError
from patchgate.remoting.base import RemoteSession, Script
from patchgate.remoting.staging import OP_MARKER_PREFIX, parse_document

APPROVE_CONTRACT: dict[str, tuple[type | None, ...]] = {
    "Kb": (str,), "Group": (str,), "GroupCreated": (bool,), "PreviousTargetingMode": (str,),
    "Updates": (list, dict), "Url": (str,)}
UNAPPROVE_CONTRACT: dict[str, tuple[type | None, ...]] = {"Kb": (str,), "Group": (str,), "Removed": (int,)}
CLIENT_CONTRACT: dict[str, tuple[type | None, ...]] = {
    "Offered": (list, dict, None), "Installed": (list, str, None), "Results": (list, dict, None),
    "ResultCode": (int,), "HResult": (int,), "RebootRequired": (bool,), "TaskRemoved": (bool,)}

# WUA OperationResultCode (https://learn.microsoft.com/windows/win32/api/wuapi/ne-wuapi-operationresultcode)
RESULT_CODES = {0: "NotStarted", 1: "InProgress", 2: "Succeeded", 3: "SucceededWithErrors", 4: "Failed",
                5: "Aborted"}


def wsus_script(op: str, **parameters: Any) -> Script:
    text = (resources.files("patchgate.wsus") / "scripts" / f"{op}.ps1").read_text(encoding="utf-8")
    if not text.startswith(OP_MARKER_PREFIX + op):
        raise RuntimeError(f"wsus/scripts/{op}.ps1 must start with '{OP_MARKER_PREFIX}{op}'")
    return Script(name=op, body=text, parameters=parameters)


def listed(value: Any) -> list[Any]:
    """ConvertTo-Json prints a one-element array as the element itself, and an empty one as null."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Approval:
    """What ``wsus-approve`` did on the server, so that ``wsus-unapprove`` can undo exactly that."""

    server: str
    kb: str
    group: str
    group_created: bool
    previous_targeting_mode: str
    url: str
    updates: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def unknown(cls, server: str, kb: str, group: str) -> "Approval":
        """An approval whose answer was never read: undoing it deletes the KB's approvals for the group and
        leaves the group and the targeting mode alone."""
        return cls(server=server, kb=kb, group=group, group_created=False, previous_targeting_mode="", url="")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Approval":
        return cls(server=str(doc["server"]), kb=str(doc["kb"]), group=str(doc["group"]),
                   group_created=bool(doc.get("group_created")),
                   previous_targeting_mode=str(doc.get("previous_targeting_mode") or ""), url=str(doc.get("url") or ""),
                   updates=list(doc.get("updates") or []))

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "kb": self.kb, "group": self.group, "group_created": self.group_created,
                "previous_targeting_mode": self.previous_targeting_mode, "url": self.url, "updates": self.updates}


def approve(session: RemoteSession, *, server: str, kb: str, group: str, timeout: float | None) -> Approval:
    doc = parse_document(session.run(wsus_script("wsus-approve", Kb=kb, Group=group), timeout=timeout),
                         "wsus-approve", APPROVE_CONTRACT, server, LabError)
    return Approval(server=server, kb=str(doc["Kb"]), group=str(doc["Group"]),
                    group_created=bool(doc["GroupCreated"]), previous_targeting_mode=str(doc["PreviousTargetingMode"]),
                    url=str(doc["Url"]), updates=[u for u in listed(doc["Updates"]) if isinstance(u, dict)])


def unapprove(session: RemoteSession, approval: Approval, *, timeout: float | None) -> dict[str, Any]:
    script = wsus_script("wsus-unapprove", Kb=approval.kb, Group=approval.group, RemoveGroup=approval.group_created,
                         TargetingMode=approval.previous_targeting_mode)
    return parse_document(session.run(script, timeout=timeout), "wsus-unapprove", UNAPPROVE_CONTRACT,
                          approval.server, LabError)


@dataclass(frozen=True)
class ClientResult:
    """What one VM was offered and what it installed, as its SYSTEM task reported it."""

    offered: list[dict[str, Any]]
    installed: list[str]
    results: list[dict[str, Any]]
    result_code: int
    hresult: int
    reboot_required: bool
    task_removed: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"offered": self.offered, "installed": self.installed, "results": self.results,
                "result_code": self.result_code, "result": RESULT_CODES.get(self.result_code, "unknown"),
                "hresult": f"0x{self.hresult & 0xFFFFFFFF:08X}", "reboot_required": self.reboot_required,
                "task_removed": self.task_removed, "error": self.error}


def client_install(session: RemoteSession, *, vm: str, url: str, group: str, task_name: str,
                   task_timeout: float, timeout: float | None) -> ClientResult:
    script = wsus_script("wsus-client", Url=url, Group=group, TaskName=task_name, TimeoutSeconds=int(task_timeout))
    doc = parse_document(session.run(script, timeout=timeout), "wsus-client", CLIENT_CONTRACT, vm, InstallError)
    offered = [o for o in listed(doc["Offered"]) if isinstance(o, dict)]
    return ClientResult(offered=offered, installed=[str(k).upper() for k in listed(doc["Installed"]) if k],
                        results=[r for r in listed(doc["Results"]) if isinstance(r, dict)],
                        result_code=int(doc["ResultCode"]), hresult=int(doc["HResult"]),
                        reboot_required=bool(doc["RebootRequired"]), task_removed=bool(doc["TaskRemoved"]),
                        error=str(doc["Error"]) if doc.get("Error") else None)
