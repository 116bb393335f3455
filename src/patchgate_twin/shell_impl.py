"""TwinShell: what a twin host answers to the scripts patchgate sends it.

Scripts are recognised by their first-line marker (``# patchgate-op: <name>`` or ``# patchgate-probe: <area>``),
pypsrp's own file-copy script by its shape, and a handful of everyday commands (``Get-Service X``, ``hostname``)
so testinfra's ``host.run`` works. Anything else answers as PowerShell does for an unknown command.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from typing import Any, Callable

from patchgate.remoting.staging import REFUSED_HASH
from patchgate_twin import filecopy
from patchgate_twin.lab import TwinLab
from patchgate_twin.guestfiles import GuestFiles
from patchgate_twin.model import WindowsHost
from patchgate_twin.shell import PipelineOutput, Statement, TwinFault

log = logging.getLogger(__name__)

MARKER_RE = re.compile(r"^\s*#\s*patchgate-(op|probe):\s*([A-Za-z0-9_-]+)", re.MULTILINE)
STAND_IN_RE = re.compile(r"^kb:\s*(KB\d+)\s*$", re.MULTILINE | re.IGNORECASE)


def _marker(script: str) -> tuple[str, str] | None:
    head = script.lstrip()[:400]
    match = MARKER_RE.match(head)
    return (match.group(1), match.group(2)) if match else None


def _unwrap_invoke_expression(statements: list[Statement]) -> list[Statement]:
    """``Client.execute_ps(script)`` sends ``Invoke-Expression -Command <script> | Out-String -Stream``; run the
    script itself, as PowerShell would (the output of the twin's scripts is already text)."""
    if not statements or statements[0].is_script or statements[0].script.lower() != "invoke-expression":
        return statements
    command = statements[0].parameters.get("Command")
    if not isinstance(command, str):
        return statements
    rest = [s for s in statements[1:] if s.is_script or s.script.lower() != "out-string"]
    return [Statement(script=command), *rest]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class TwinShell:
    """ScriptHost for every transport of the twin; one instance per twin lab."""

    def __init__(self, lab: TwinLab) -> None:
        from patchgate_twin.wsus_model import TwinWsus

        self.lab = lab
        self.wsus = TwinWsus(lab)
        self._ops: dict[str, Callable[[str, WindowsHost, Statement, list[Any]], PipelineOutput]] = {
            "capture": self._capture,
            "install": self._install,
            "wsus-sync": self._wsus_sync,
            "preflight": self._preflight,
            "fetch": self._fetch,
            "wsus-approve": self.wsus.approve,
            "wsus-unapprove": self.wsus.unapprove,
            "wsus-status": self.wsus.status,
            "wsus-client": self.wsus.client,
        }
        self.pipelines: dict[str, int] = {}
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------ entry point

    def refuses_remoting(self, vm: str) -> str | None:
        """The WSMan endpoint drops every connection while this says why (see TwinLab.refuses_remoting)."""
        return self.lab.refuses_remoting(vm)

    def open_input(self, vm: str, statements: list[Statement]) -> "list[Any] | filecopy.Upload":
        """pypsrp's copy script: its chunks go to the VM's disk folder as they arrive (see ScriptHost)."""
        if filecopy.is_copy_pipeline(_unwrap_invoke_expression(statements)):
            return filecopy.Upload(self.lab.store(vm))
        return []

    def run_pipeline(self, vm: str, statements: list[Statement], input_data: Any) -> PipelineOutput:
        with self._count_lock:
            self.pipelines[vm] = self.pipelines.get(vm, 0) + 1
        if not self.lab.is_ready(vm):
            raise TwinFault("connection-reset", f"{vm} is not running")
        if self.lab.has_fault(vm, "auth-failure"):
            raise TwinFault("auth-failure", "credentials rejected")
        refused = self.lab.refuses_remoting(vm)
        if refused:
            raise TwinFault("connection-reset", f"connection refused: {refused}")
        host = self.lab.host(vm)
        if not statements:
            return PipelineOutput()
        statements = _unwrap_invoke_expression(statements)
        staged = filecopy.handle(self.lab.files(vm, host), statements, input_data)  # copy script, stage-* ops
        if staged is not None:
            if self.lab.vm(vm).host is host:
                self.lab.persist(vm, dirty=True)
            return staged
        first = statements[0]
        marker = _marker(first.script) if first.is_script else None
        if marker:
            kind, name = marker
            if kind == "op" and name in self._ops:
                try:
                    return self._ops[name](vm, host, first, input_data)
                finally:
                    # the op may have changed the host: write its disk, unless the VM was reverted meanwhile
                    # (an install that hung until the run restored the VM must not mark the fresh disk dirty)
                    if name not in ("capture", "preflight") and self.lab.vm(vm).host is host:
                        self.lab.persist(vm, dirty=True)
            if kind == "probe":
                return self._capture(vm, host, first, input_data)
            return PipelineOutput(errors=[f"patchgate twin: unknown operation '{name}'"], failed=True)
        return self._everyday(vm, host, statements)

    # ------------------------------------------------------------ patchgate operations

    def _capture(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        from patchgate_twin.render import render_capture

        if self.lab.has_fault(vm, "wsman-reset"):
            raise TwinFault("connection-reset", "connection reset during capture")
        if self.lab.has_fault(vm, "wsman-fault"):
            raise TwinFault("wsman-fault", "The WS-Management service cannot process the request.")
        self.lab.settle(vm, host)
        text = render_capture(stmt.script, host, dict(stmt.parameters), now=self.lab.guest_now(vm))
        if self.lab.has_fault(vm, "malformed-probe"):
            text = text.replace('"output":"{', '"output":"<html>{', 1)
        return PipelineOutput(output=[text])

    def _preflight(self, vm: str, host: WindowsHost, _stmt: Statement, _input: list[Any]) -> PipelineOutput:
        from patchgate_twin.render_preflight import render_preflight

        return PipelineOutput(output=[render_preflight(host, self.lab.vm(vm).faults, self.lab.guest_now(vm))])

    def _fetch(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        """The VM downloads a package from the run's content server or copies it from a share the twin serves,
        from this (the twin's) process."""
        from patchgate_twin.download import run_fetch

        settings = self.lab.lab.hypervisor.settings
        return run_fetch(self.lab.files(vm, host), dict(stmt.parameters), self.lab.vm(vm).faults, self.lab.stop,
                         getattr(settings, "shares", None) or [], trusted_ca=getattr(settings, "trusted_ca", None))

    def _install(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        """Add-WindowsPackage -Online -PackagePath <file|folder> -NoRestart on the twin. A folder holds a
        checkpoint cumulative update and its prerequisites: each package installs in name order, as DISM does."""
        from patchgate_twin.behaviours import apply_install

        path = filecopy.resolve(str(stmt.parameters.get("PackagePath", "")))
        files = self.lab.files(vm, host)
        staged, intact = filecopy.staged_files(files, path, dict(stmt.parameters.get("Sha256") or {}))
        if not intact:  # the install op hashes the staged files first and installs nothing on a difference
            return PipelineOutput(output=[_json({
                "PackagePath": path, "RestartNeeded": False, "ExitCode": REFUSED_HASH, "Staged": staged,
                "Log": ["Refused: a staged file is missing or is not the approved file (SHA-256); nothing was "
                        "installed"]})])
        packages = self._packages_at(files, path)
        if not packages:
            return PipelineOutput(errors=[f"Add-WindowsPackage : The system cannot find the file specified. "
                                          f"({path})"], failed=True)
        kbs: list[str] = []
        for name in packages:
            match = STAND_IN_RE.search(files.head(filecopy.key(name)).decode("utf-8", "replace"))
            if not match:
                return PipelineOutput(errors=[
                    f"Add-WindowsPackage : {name} is not a package the twin can install (the twin installs only "
                    "its stand-in packages, which name their KB on a 'kb:' line)"], failed=True)
            kbs.append(match.group(1).upper())
        if self.lab.has_fault(vm, "install-hangs"):
            self.lab.stop.wait()  # until the run stops or the client gives up
            raise TwinFault("hang", "install never finished")
        if self.lab.has_fault(vm, "install-fails"):
            return PipelineOutput(errors=["Add-WindowsPackage : An error occurred applying the package. "
                                          "Error: 0x800f0922 (twin fault 'install-fails')"], failed=True)
        self.lab._pause(self.lab.latency.install)
        restart, exit_code, log = False, 0, []
        for kb in kbs:
            try:
                behaviour = self.lab.catalog.behaviour(kb)
            except KeyError:
                return PipelineOutput(errors=[f"Add-WindowsPackage : The twin catalogue has no behaviour for {kb}; "
                                              "add one with --twin-catalog DIR"], failed=True)
            outcome = apply_install(host, behaviour, self.lab.guest_now(vm))
            log += list(outcome.log)
            if getattr(outcome, "never_ready_after_reboot", False):
                self.lab.vm(vm).sticky_faults.add("never-ready")
            if getattr(outcome, "hangs", False):
                self.lab.stop.wait()
                raise TwinFault("hang", "install never finished")
            restart = restart or bool(outcome.restart_needed)
            exit_code = int(outcome.exit_code) if outcome.exit_code else exit_code
            if outcome.failed:
                result = {"PackagePath": path, "RestartNeeded": restart, "ExitCode": int(outcome.exit_code),
                          "Log": log, "Staged": staged}
                message = outcome.log[-1] if outcome.log else f"install of {kb} failed"
                return PipelineOutput(output=[_json(result)], errors=[f"Add-WindowsPackage : {message}"],
                                      failed=True)
        self.lab.after_install(vm, host)
        state = "InstallPending" if restart else "Installed"  # as Get-WindowsPackage -Online reports it
        packages = [{"PackageName": f"Package_for_RollupFix (twin stand-in for {kb})", "PackageState": state,
                     "ReleaseType": "Update"} for kb in kbs]
        return PipelineOutput(output=[_json({"PackagePath": path, "RestartNeeded": restart, "ExitCode": exit_code,
                                             "Log": log, "Staged": staged, "Packages": packages})])

    @staticmethod
    def _packages_at(files: GuestFiles, path: str) -> list[str]:
        """What DISM installs for ``path``: a target file with the other packages of its folder (its checkpoint
        cumulative updates, which DISM finds beside it) first, in name order; or every file of the folder ``path``.
        The stand-in packages name their KB near the top, so only their first bytes are read (real-size ones
        are padded to size after it)."""
        key = filecopy.key(path)

        def folder(prefix: str) -> list[str]:
            return sorted(name for name in files.keys()
                          if name.startswith(prefix) and "\\" not in name[len(prefix):])

        if files.exists(key):
            beside = [n for n in folder(key.rsplit("\\", 1)[0] + "\\") if n != key]
            return [*beside, key]
        return folder(key.rstrip("\\") + "\\")

    def _wsus_sync(self, vm: str, host: WindowsHost, stmt: Statement, _input: list[Any]) -> PipelineOutput:
        from patchgate_twin.behaviours import run_wsus_sync

        if not host.wsus.role_installed:
            return PipelineOutput(errors=["Get-WsusServer : The term 'Get-WsusServer' is not recognized as the "
                                          "name of a cmdlet (the WSUS role is not installed)"], failed=True)
        previous = host.wsus.last_sync.id if host.wsus.last_sync else None
        run_wsus_sync(host, self.lab.guest_now(vm))
        info = host.wsus.last_sync
        assert info is not None
        return PipelineOutput(output=[_json({
            "StartTime": info.start_time.astimezone(dt.timezone.utc).isoformat(),
            "EndTime": info.end_time.astimezone(dt.timezone.utc).isoformat(),
            "Result": info.result, "Error": info.error, "ErrorText": info.error_text,
            "StartedManually": info.started_manually, "UpdateErrorCount": info.update_error_count,
            "Id": info.id, "PreviousId": previous})])

    # ------------------------------------------------------------ everyday commands

    def _everyday(self, vm: str, host: WindowsHost, statements: list[Statement]) -> PipelineOutput:
        script = "; ".join(s.script for s in statements).strip()
        command = script.splitlines()[0].strip() if script else ""
        name_match = re.fullmatch(r"(?i)get-service\s+(?:-name\s+)?['\"]?([\w$#.-]+)['\"]?(.*)", command)
        if name_match:
            service = host.services.get(name_match.group(1)) or next(
                (s for n, s in host.services.items() if n.lower() == name_match.group(1).lower()), None)
            if service is None:
                return PipelineOutput(errors=[f"Get-Service : Cannot find any service with service name "
                                              f"'{name_match.group(1)}'."])
            rest = name_match.group(2)
            if "ConvertTo-Json" in rest or "convertto-json" in rest.lower():
                return PipelineOutput(output=[_json({"Name": service.name, "DisplayName": service.display_name,
                                                     "Status": service.state, "StartType": service.start_mode})])
            return PipelineOutput(output=[
                "\nStatus   Name               DisplayName\n------   ----               -----------\n"
                f"{service.state:<8} {service.name:<18} {service.display_name}\n"])
        lowered = command.lower()
        if lowered in ("hostname", "$env:computername", "hostname.exe"):
            return PipelineOutput(output=[host.computer_name])
        if lowered.startswith("write-output "):
            return PipelineOutput(output=[command.split(" ", 1)[1].strip("'\"")])
        if re.fullmatch(r"(?i)get-hotfix(\s+\|\s*select-object\s+-expandproperty\s+hotfixid)?", command):
            return PipelineOutput(output=[h.hotfix_id for h in host.hotfixes])
        if re.fullmatch(r"(?i)\(?\$psversiontable\.psversion\)?(\.tostring\(\))?", command):
            return PipelineOutput(output=["5.1.26100.6899"])
        word = command.split()[0] if command else ""
        return PipelineOutput(errors=[
            f"{word} : The term '{word}' is not recognized as the name of a cmdlet, function, script file, or "
            "operable program. (patchgate twin answers probes, patchgate operations and a few everyday commands "
            "only; see docs/twin.md)"])
