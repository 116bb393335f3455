"""A small ScriptHost for the remoting tests: the twin endpoint's executor (not a mock of pypsrp)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from typing import Any, Callable

from patchgate.config.lab import PsrpSettings
from patchgate_twin import filecopy
from patchgate_twin.guestfiles import BlobStore, GuestFiles
from patchgate_twin.shell import PipelineOutput, Statement, TwinFault

USERNAME = "labadmin"
PASSWORD = "Tw1n-Remoting-Pa55!"


class LabHost:
    """Answers pipelines like a tiny Windows host: echo, the staging ops, a scripted install, copy."""

    def __init__(self) -> None:
        self.files: dict[str, GuestFiles] = {}  # per VM, over a temp folder (as the twin's disk folder)
        self.calls: list[tuple[str, list[Statement], list[Any]]] = []
        self.faults: deque[str] = deque()  # one TwinFault kind per coming pipeline
        self.always_fault: str | None = None
        self.gate: threading.Event | None = None  # block pipelines until set
        self.corrupt_writes = False
        self.install_doc: dict[str, Any] = {"RestartNeeded": True, "ExitCode": 3010, "Log": ["ok"]}
        self.install_errors: list[str] = []
        self.installed: list[str] = []  # package paths the install op accepted
        self.handler: Callable[[str, list[Statement], list[Any]], PipelineOutput] | None = None
        self._lock = threading.Lock()

    def vm_files(self, vm: str) -> GuestFiles:
        with self._lock:
            if vm not in self.files:
                self.files[vm] = GuestFiles({}, BlobStore())
            return self.files[vm]

    def read(self, vm: str, key: str) -> bytes:
        return self.vm_files(vm).read_bytes(key)

    def close(self) -> None:
        for files in self.files.values():
            files.store.close()

    def run_pipeline(self, vm: str, statements: list[Statement], input_data: list[Any]) -> PipelineOutput:
        with self._lock:
            self.calls.append((vm, statements, input_data))
            kind = self.faults.popleft() if self.faults else self.always_fault
        if kind:
            raise TwinFault(kind, f"injected by test on {vm}")
        if self.gate is not None:
            self.gate.wait(30)
        files = self.vm_files(vm)
        result = filecopy.handle(files, statements, input_data)
        if result is not None:
            if self.corrupt_writes and filecopy.is_copy_script(statements[0].script):
                for key in files.keys():
                    data = files.read_bytes(key)
                    files.write_bytes(key, data[:-1] + bytes([data[-1] ^ 0xFF]) if data else b"x")
            return result
        if filecopy.op_name(statements[0].script) == "install":
            parameters = statements[0].parameters
            staged, intact = filecopy.staged_files(files, parameters["PackagePath"], dict(parameters["Sha256"]))
            if not intact:  # as install.ps1 does: hash first, install nothing on a difference
                return PipelineOutput(output=[json.dumps({
                    "PackagePath": parameters["PackagePath"], "RestartNeeded": False, "ExitCode": -2146889721,
                    "Log": ["Refused"], "Staged": staged})])
            self.installed.append(parameters["PackagePath"])
            doc = {"PackagePath": parameters["PackagePath"], **self.install_doc, "Staged": staged}
            return PipelineOutput(output=[json.dumps(doc)], errors=list(self.install_errors))
        if self.handler is not None:
            return self.handler(vm, statements, input_data)
        first = statements[0]
        if first.script.startswith("Write-Error"):
            return PipelineOutput(errors=[first.script.split(" ", 1)[1].strip("'")])
        if first.script.strip() == "Get-Service WinRM":
            return PipelineOutput(output=["Status   Name               DisplayName",
                                          "Running  WinRM              Windows Remote Management (WS-Manag..."])
        return PipelineOutput(output=[json.dumps({
            "vm": vm, "script_len": len(first.script), "script_sha256": hashlib.sha256(first.script.encode()).hexdigest(),
            "parameters": first.parameters, "arguments": first.arguments, "statements": len(statements),
        })])


def http_settings(**overrides: Any) -> PsrpSettings:
    values: dict[str, Any] = dict(ssl=False, auth="basic", encryption="never", connect_timeout=5,
                                  read_timeout=15, operation_timeout=5)
    values.update(overrides)
    return PsrpSettings(**values)


