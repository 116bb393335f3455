"""What Windows itself does when a behaviour changes a host, so behaviours stay short: a service that starts gets a
process under services.exe, one that stops loses its process (and the listeners only it owned); the Service
Control Manager logs 7036 (state), 7040 (start type) and 7045 (new service)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ntpath
from typing import Any, Literal

from patchgate_twin import specs
from patchgate_twin.model import EventRecord, Process, Service, WindowsHost

START_TYPE_TEXT = {"Auto": "auto start", "Manual": "demand start", "Disabled": "disabled",
                   "Boot": "boot start", "System": "system start"}


def start_type_text(start_mode: str) -> str:
    """How SCM events spell a start type ("demand start" for Manual)."""
    return START_TYPE_TEXT.get(start_mode, start_mode)


def next_pid(host: WindowsHost) -> int:
    return max([p.process_id for p in host.processes] + [4000]) + 4


def find_process(host: WindowsHost, name: str) -> Process | None:
    return next((p for p in host.processes if p.name.lower() == name.lower()), None)


def image_name(path_name: str) -> str:
    """The executable's file name in a service's ImagePath (quoted or followed by arguments)."""
    exe = path_name.strip()
    if exe.startswith('"'):
        exe = exe[1:].split('"', 1)[0]
    else:
        exe = exe.split(" -", 1)[0].split(" /", 1)[0].strip()
    return ntpath.basename(exe) or "svchost.exe"


def scm_event(host: WindowsHost, when: dt.datetime, event_id: int, message: str, props: list[str],
              level: Literal["Critical", "Error", "Warning", "Information"] = "Information") -> None:
    host.events.append(EventRecord("System", "Service Control Manager", event_id, level, when, message, props))


def start_service(host: WindowsHost, svc: Service) -> None:
    """Running needs a live process: reuse the recorded one or start a new one under services.exe."""
    pids = {p.process_id for p in host.processes}
    if svc.process_id and svc.process_id in pids:
        return
    svc.process_id = next_pid(host)
    services_exe = find_process(host, "services.exe")
    host.processes.append(Process(svc.process_id, image_name(svc.path_name),
                                  services_exe.process_id if services_exe else 0, svc.path_name))


def stop_service(host: WindowsHost, svc: Service) -> None:
    pid = svc.process_id
    svc.process_id = 0
    if pid and not any(s.process_id == pid for s in host.services.values() if s is not svc):
        host.processes = [p for p in host.processes if p.process_id != pid]
        host.listening_ports = [lp for lp in host.listening_ports if lp.owning_process != pid]


def patched(obj: Any, data: dict[str, Any]) -> Any:
    """A copy of dataclass ``obj`` with the fields in ``data`` replaced (validated through specs)."""
    return specs.build(type(obj), {**dataclasses.asdict(obj), **data})
