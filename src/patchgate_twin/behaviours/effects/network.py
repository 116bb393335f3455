"""Effects on listening ports (Get-NetTCPConnection -State Listen and its UDP counterpart)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import Field

from patchgate_twin.behaviours.common import Strict
from patchgate_twin.behaviours.effects.base import EffectBase
from patchgate_twin.behaviours.windows import find_process
from patchgate_twin.model import ListeningPort, WindowsHost


class PortSpec(Strict):
    protocol: Literal["TCP", "UDP"] = "TCP"
    local_address: str = "0.0.0.0"
    local_port: int = Field(..., ge=0, le=65535)
    owning_process: int | None = None
    process_name: str = Field(..., description="System for http.sys/SMB listeners; else the owner's image name")


class PortRef(Strict):
    protocol: Literal["TCP", "UDP"] = "TCP"
    local_port: int = Field(..., ge=0, le=65535)
    local_address: str | None = None


class AddListeningPort(EffectBase):
    """``add_listening_port: {local_port: 8530, process_name: System}``; the owner PID is looked up by
    ``process_name`` when not given (4 for System)."""

    ACTION: ClassVar[str] = "add_listening_port"
    add_listening_port: PortSpec

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        spec = self.add_listening_port
        pid = spec.owning_process
        if pid is None:
            proc = find_process(host, spec.process_name)
            pid = proc.process_id if proc else (4 if spec.process_name == "System" else 0)
        host.listening_ports.append(ListeningPort(spec.protocol, spec.local_address, spec.local_port, pid,
                                                  spec.process_name))


class RemoveListeningPort(EffectBase):
    """``remove_listening_port: {protocol: TCP, local_port: 8530}``: on every address unless one is given."""

    ACTION: ClassVar[str] = "remove_listening_port"
    remove_listening_port: PortRef

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        ref = self.remove_listening_port
        host.listening_ports = [
            lp for lp in host.listening_ports
            if not (lp.protocol == ref.protocol and lp.local_port == ref.local_port
                    and (ref.local_address is None or lp.local_address == ref.local_address))]
