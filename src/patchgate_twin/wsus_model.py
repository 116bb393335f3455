"""The twin's WSUS: approvals per computer target group on a twin WSUS server, what it offers each client, and the
client's SYSTEM task that scans, downloads and installs (the ops of patchgate/wsus/scripts, docs/twin.md).

A server's approvals belong to its running disk: a revert (a new host object) starts with none, as a reverted
WSUS database would. What a server offers is what is approved for the client's group (or All Computers), exists
in the metadata the server holds, applies to the client and matches the update's ``offered_to`` rules.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from patchgate_twin.behaviours import Behaviour, apply_install
from patchgate_twin.behaviours.results import CBS_E_INSTALLERS_FAILED, hresult
from patchgate_twin.lab import TwinLab
from patchgate_twin.model import WindowsHost
from patchgate_twin.shell import PipelineOutput, Statement, TwinFault

ALL_COMPUTERS = "All Computers"
# WUA result codes (OperationResultCode) and the HRESULTs the twin reports
ORC_SUCCEEDED, ORC_FAILED = 2, 4
WU_E_PT_WINHTTP_NAME_NOT_RESOLVED = -2145103579  # 0x80072EE7 [U: the exact code for an unknown WSUS host]
# Microsoft's WSUS classification for every OS update the twin knows; for hotpatches it is [U]
CLASSIFICATIONS = {"dotnet": "Updates", "synthetic": "Updates", "other": "Updates"}


@dataclass
class ServerState:
    host: WindowsHost  # the disk these approvals live on
    targeting_mode: str = "Server"
    groups: set[str] = field(default_factory=lambda: {ALL_COMPUTERS})
    approvals: dict[str, set[str]] = field(default_factory=dict)  # group -> approved KBs
    approved_at: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)  # (group, KB) ->
    # (CreationDate, Deadline), ISO 8601 UTC
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # KB -> its published files (wsus-status)


def published_path(computer_name: str, base: Path | None = None) -> Path:
    """Where a twin WSUS served outside a lab publishes its database, for the twin labs whose VMs it serves (in
    their state folder, ``base``)."""
    from patchgate.paths import state_dir

    return (base or state_dir()) / "twin-wsus" / f"{computer_name.lower()}.json"


def publish(state: ServerState, base: Path | None = None) -> None:
    """Write what clients are offered by (approvals, groups, targeting mode, metadata day), atomically."""
    from patchgate.atomic import atomic_write

    day = state.host.wsus.metadata_as_of
    doc = {"computer_name": state.host.computer_name, "targeting_mode": state.targeting_mode,
           "groups": sorted(state.groups), "metadata_as_of": day.isoformat() if day else None,
           "approvals": {group: sorted(kbs) for group, kbs in state.approvals.items()}}
    path = published_path(state.host.computer_name, base)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, _json(doc))


@dataclass
class _PublishedWsus:
    """Just what offering reads of a WSUS published by another process (patchgate_twin.production)."""

    computer_name: str
    metadata_as_of: dt.date | None

    @property
    def wsus(self) -> "_PublishedWsus":
        return self


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _utc_text(value: str) -> str:
    """An ISO 8601 time as the UTC text WSUS gives back (a time without an offset is UTC, as the op assumes)."""
    if not value:
        return ""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def _fail(message: str) -> PipelineOutput:
    return PipelineOutput(errors=[message], failed=True)


class TwinWsus:
    """The WSUS ops of one twin lab (TwinShell routes ``wsus-approve``, ``wsus-unapprove``, ``wsus-client``)."""

    def __init__(self, lab: TwinLab) -> None:
        self.lab = lab
        self._servers: dict[str, ServerState] = {}
        self._lock = threading.Lock()
        self.policies: dict[str, dict[str, Any]] = {}  # client VM -> the WindowsUpdate policy values it was given
        self.on_change: Callable[[ServerState], None] | None = None  # after approve/unapprove (publish())

    def server(self, vm: str, host: WindowsHost) -> ServerState:
        with self._lock:
            state = self._servers.get(vm)
            if state is None or state.host is not host:  # reverted since: a fresh database
                state = self._servers[vm] = ServerState(host)
            return state

    def approved(self, vm: str, group: str) -> set[str]:
        """The KBs approved for ``group`` on server ``vm`` (the test's read-back)."""
        state = self.server(vm, self.lab.host(vm))
        return set(state.approvals.get(group, set()))

    # ------------------------------------------------------------ server ops

    def approve(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        if not host.wsus.role_installed:
            return _fail("Unable to find type [Microsoft.UpdateServices.Administration.AdminProxy] (the WSUS role "
                         "is not installed)")
        kb, group = str(stmt.parameters.get("Kb", "")).upper(), str(stmt.parameters.get("Group", ""))
        production = bool(stmt.parameters.get("Production"))
        behaviour = self._held(host, kb)
        if behaviour is None:
            return _fail(f"WSUS on {host.computer_name} holds no approvable update {kb} (not synchronized yet, or "
                         "declined)")
        state = self.server(vm, host)
        if production and group not in state.groups:
            return _fail(f"WSUS on {host.computer_name} has no computer target group '{group}' (production groups "
                         "are never created)")
        try:
            deadline = _utc_text(str(stmt.parameters.get("Deadline") or "")) or None
        except ValueError:
            return _fail(f"String was not recognized as a valid DateTime: {stmt.parameters.get('Deadline')!r}")
        previous = state.targeting_mode
        if not production:
            state.targeting_mode = "Client"
        created = group not in state.groups
        state.groups.add(group)
        state.approvals.setdefault(group, set()).add(kb)
        state.approved_at[(group, kb)] = (self.lab.clock().astimezone(dt.UTC).isoformat(), deadline)
        self._changed(state)
        scheme = "https" if host.wsus.using_ssl else "http"
        return PipelineOutput(output=[_json({
            "Kb": kb, "Group": group, "GroupCreated": created, "PreviousTargetingMode": previous,
            "Updates": [{"UpdateId": f"twin-{kb}", "Title": behaviour.title,
                         "CreationDate": state.approved_at[(group, kb)][0], "Deadline": deadline}],
            "Url": f"{scheme}://{host.computer_name.lower()}.lab.twin:{host.wsus.port_number}"})])

    def unapprove(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        kb, group = str(stmt.parameters.get("Kb", "")).upper(), str(stmt.parameters.get("Group", ""))
        state = self.server(vm, host)
        removed = 1 if kb in state.approvals.get(group, set()) else 0
        state.approvals.get(group, set()).discard(kb)
        state.approved_at.pop((group, kb), None)
        group_removed = bool(stmt.parameters.get("RemoveGroup")) and group in state.groups
        if group_removed:
            state.groups.discard(group)
            state.approvals.pop(group, None)
        state.targeting_mode = str(stmt.parameters.get("TargetingMode") or state.targeting_mode)
        self._changed(state)
        return PipelineOutput(output=[_json({"Kb": kb, "Group": group, "Removed": removed,
                                             "GroupRemoved": group_removed})])

    def _changed(self, state: ServerState) -> None:
        if self.on_change is not None:
            self.on_change(state)

    def status(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        """``wsus-status``: the KB's update, its published files and its approvals per group; changes nothing."""
        if not host.wsus.role_installed:
            return _fail("Unable to find type [Microsoft.UpdateServices.Administration.AdminProxy] (the WSUS role "
                         "is not installed)")
        kb = str(stmt.parameters.get("Kb", "")).upper()
        state = self.server(vm, host)
        behaviour = self._held(host, kb)
        updates = []
        if behaviour is not None:
            approvals = [{"Group": group, "Action": "Install", "CreationDate": created, "Deadline": deadline}
                         for (group, approved_kb), (created, deadline) in sorted(state.approved_at.items())
                         if approved_kb == kb and kb in state.approvals.get(group, set())]
            updates.append({"UpdateId": f"twin-{kb}", "Title": behaviour.title, "IsDeclined": False,
                            "Files": list(state.files.get(kb, [])), "Approvals": approvals})
        return PipelineOutput(output=[_json({"Kb": kb, "Server": host.computer_name, "Groups": sorted(state.groups),
                                             "Updates": updates})])

    def _held(self, server: WindowsHost, kb: str) -> Behaviour | None:
        """The update as the server's metadata has it: known to the catalogue and released by that day."""
        try:
            behaviour = self.lab.catalog.behaviour(kb)
        except KeyError:
            return None
        day = server.wsus.metadata_as_of
        if day is not None and behaviour.released is not None and behaviour.released > day:
            return None
        return behaviour

    # ------------------------------------------------------------ the client's op and its SYSTEM task

    def client(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        url, group = str(stmt.parameters.get("Url", "")), str(stmt.parameters.get("Group", ""))
        task = str(stmt.parameters.get("TaskName", "patchgate-wsus"))
        self.policies[vm] = {"WUServer": url, "WUStatusServer": url, "TargetGroupEnabled": 1, "TargetGroup": group,
                             "AU\\UseWUServer": 1, "AU\\NoAutoUpdate": 1}
        if self.lab.has_fault(vm, "install-hangs"):
            self._hang()
        doc = self._task(vm, host, url, group)
        doc.update({"TaskName": task, "TaskRemoved": True})
        if doc["Installed"]:
            self.lab.after_install(vm, host)
        return PipelineOutput(output=[_json(doc)])

    def _server_at(self, url: str) -> ServerState | None:
        """The lab VM serving ``url``, else a twin WSUS published outside the lab under that name."""
        name = (urlsplit(url).hostname or "").split(".")[0].lower()
        for vm, twin_vm in self.lab.vms.items():
            if twin_vm.host is None:  # never reverted here (under pytest-xdist: another worker's VM)
                if vm.lower() == name:
                    return None
                continue
            if vm.lower() == name or twin_vm.host.computer_name.lower() == name:
                return self.server(vm, self.lab.host(vm)) if self.lab.is_ready(vm) else None
        return self._published(name)

    @staticmethod
    def _published(name: str) -> ServerState | None:
        path = published_path(name) if name else None
        if path is None or not path.is_file():
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        day = dt.date.fromisoformat(doc["metadata_as_of"]) if doc.get("metadata_as_of") else None
        host: Any = _PublishedWsus(computer_name=str(doc["computer_name"]), metadata_as_of=day)
        return ServerState(host=host, targeting_mode=str(doc["targeting_mode"]), groups=set(doc["groups"]),
                           approvals={group: set(kbs) for group, kbs in doc["approvals"].items()})

    def offers(self, server_vm: str, server: WindowsHost, host: WindowsHost, group: str) -> list[Behaviour]:
        """What the server offers ``host`` in ``group``: approved for it (or All Computers), held by the server's
        metadata, not installed, applicable and matching the update's offering rules."""
        return self._offers(self.server(server_vm, server), host, group)

    def _offers(self, state: ServerState, host: WindowsHost, group: str) -> list[Behaviour]:
        server = state.host
        approved = set(state.approvals.get(ALL_COMPUTERS, set()))
        if state.targeting_mode == "Client":  # otherwise the client's TargetGroup is ignored
            approved |= state.approvals.get(group, set())
        held = [b for b in (self._held(server, kb) for kb in sorted(approved)) if b is not None]
        return [b for b in held if not host.has_kb(b.kb) and b.offered_by_wsus(host, server.wsus.metadata_as_of)]

    def _hang(self) -> None:
        self.lab.stop.wait()  # until the run stops or the client gives up
        raise TwinFault("hang", "the WSUS install task never finished")

    def _task(self, vm: str, host: WindowsHost, url: str, group: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"Offered": [], "Installed": [], "Results": [], "ResultCode": ORC_SUCCEEDED,
                               "HResult": 0, "RebootRequired": False, "Error": None}
        found = self._server_at(url)
        if found is None:
            doc.update(ResultCode=ORC_FAILED, HResult=WU_E_PT_WINHTTP_NAME_NOT_RESOLVED,
                       Error=f"no WSUS server answers at {url} ({hresult(WU_E_PT_WINHTTP_NAME_NOT_RESOLVED)})")
            return doc
        offers = self._offers(found, host, group)
        now = host.guest_time(self.lab.clock())
        for behaviour in offers:
            doc["Offered"].append({"Kb": behaviour.kb, "Title": behaviour.title, "UpdateId": f"twin-{behaviour.kb}",
                                   "Classification": CLASSIFICATIONS.get(behaviour.classification,
                                                                         "Security Updates"),
                                   "Hotpatch": behaviour.classification == "hotpatch"})
        if offers and self.lab.has_fault(vm, "install-fails"):
            doc.update(ResultCode=ORC_FAILED, HResult=CBS_E_INSTALLERS_FAILED,
                       Error=f"Installation Failure: {hresult(CBS_E_INSTALLERS_FAILED)} (twin fault 'install-fails')")
            return doc
        for behaviour in offers:
            outcome = apply_install(host, behaviour, now)
            if outcome.hangs:
                self._hang()
            code = ORC_FAILED if outcome.failed else ORC_SUCCEEDED
            doc["Results"].append({"Kb": behaviour.kb, "ResultCode": code,
                                   "HResult": outcome.exit_code if outcome.failed else 0,
                                   "RebootRequired": bool(outcome.restart_needed)})
            if not outcome.failed:
                doc["Installed"].append(behaviour.kb)
            doc["RebootRequired"] = doc["RebootRequired"] or bool(outcome.restart_needed)
        if any(r["ResultCode"] == ORC_FAILED for r in doc["Results"]):
            doc["ResultCode"] = 3 if doc["Installed"] else ORC_FAILED  # orcSucceededWithErrors / orcFailed
        return doc
