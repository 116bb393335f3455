"""The seam between the twin's transports (WSMan endpoint, in-process remoting, ssh shim) and its model.

A transport hands over what a PSRP pipeline carries (script text, named parameters, input objects) and gets
back what PowerShell would return: output objects (strings here) and error records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Statement:
    script: str
    parameters: dict[str, Any] = field(default_factory=dict)
    arguments: list[Any] = field(default_factory=list)
    is_script: bool = True


@dataclass
class PipelineOutput:
    output: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: bool = False  # a terminating error: the pipeline state is Failed


class ScriptHost(Protocol):
    """Implemented by the twin (patchgate_twin.shell_impl.TwinShell).

    A host may also offer ``open_input(vm, statements) -> object with append(item)``: a transport then hands
    each input object to it as it arrives and passes that object as ``input_data`` (the twin writes a copied
    file to its disk that way, never holding it whole); without it, input objects are collected in a list."""

    def run_pipeline(self, vm: str, statements: list[Statement], input_data: Any) -> PipelineOutput:
        """Run one pipeline on VM ``vm``; may raise TwinFault to make the transport misbehave."""


class TwinFault(Exception):
    """Raised by the twin to make a transport misbehave (reset the connection, send a WSMan fault...)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind  # "connection-reset" | "wsman-fault" | "auth-failure" | "hang"
        self.detail = detail
        super().__init__(f"{kind}: {detail}")
