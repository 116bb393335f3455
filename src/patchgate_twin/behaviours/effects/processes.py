"""Effects on the process list (a PID is allocated when none is given)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from pydantic import Field, model_validator

from patchgate_twin.behaviours.common import Strict
from patchgate_twin.behaviours.effects.base import EffectBase
from patchgate_twin.behaviours.windows import find_process, next_pid
from patchgate_twin.model import Process, WindowsHost


class ProcessSpec(Strict):
    name: str
    process_id: int | None = None
    parent_process_id: int | None = None
    parent_name: str | None = Field(None, description="the parent is the first process with this name")
    command_line: str = ""


class ProcessRef(Strict):
    name: str | None = None
    process_id: int | None = None

    @model_validator(mode="after")
    def _one(self) -> ProcessRef:
        if (self.name is None) == (self.process_id is None):
            raise ValueError("give exactly one of 'name' or 'process_id'")
        return self


class AddProcess(EffectBase):
    """``add_process: {name: cmd.exe, parent_name: WsusService.exe}``."""

    ACTION: ClassVar[str] = "add_process"
    add_process: ProcessSpec

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        spec = self.add_process
        parent = spec.parent_process_id
        if parent is None and spec.parent_name:
            found = find_process(host, spec.parent_name)
            parent = found.process_id if found else 0
        host.processes.append(Process(spec.process_id or next_pid(host), spec.name, parent or 0, spec.command_line))


class RemoveProcess(EffectBase):
    """``remove_process: {name: cmd.exe}`` (every process of that name) or ``{process_id: N}``."""

    ACTION: ClassVar[str] = "remove_process"
    remove_process: ProcessRef

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        ref = self.remove_process
        host.processes = [p for p in host.processes
                          if not (p.process_id == ref.process_id
                                  or (ref.name is not None and p.name.lower() == ref.name.lower()))]
