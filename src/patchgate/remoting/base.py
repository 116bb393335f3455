"""What the lifecycle needs from remoting: run a script as one pipeline on a long-lived session, copy a file."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from patchgate.errors import RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.secrets.base import Credentials


@dataclass(frozen=True)
class Script:
    """A PowerShell script plus named parameters (never interpolated into the text)."""

    name: str
    body: str
    parameters: dict[str, Any] = field(default_factory=dict, repr=False)  # may carry a share's password


@dataclass
class ScriptResult:
    """Output objects as strings, error records as text; ``had_errors`` mirrors PowerShell's flag."""

    name: str
    output: list[str]
    errors: list[str] = field(default_factory=list)

    @property
    def had_errors(self) -> bool:
        return bool(self.errors)

    @property
    def text(self) -> str:
        return "\n".join(self.output)


@functools.cache
def pypsrp_copy_script() -> str:
    """The copy script pypsrp ships (``pypsrp/pwsh_scripts/copy.ps1``) without its comments and blank lines, as
    pypsrp's own ``Client.copy`` sends it: read from the package's data, not through pypsrp's private helpers."""
    text = (resources.files("pypsrp") / "pwsh_scripts" / "copy.ps1").read_text(encoding="utf-8")
    lines, in_comment = [], False
    for line in (raw.strip() for raw in text.splitlines()):
        if in_comment:
            in_comment = not line.endswith("#>")
        elif line.startswith("<#"):
            in_comment = True
        elif line and not line.startswith("#"):
            lines.append(line)
    return "\n".join(lines)


@runtime_checkable
class RemoteSession(Protocol):
    """One long-lived session per VM; implementations raise RemotingError naming the host."""

    host: str

    def run(self, script: Script, *, timeout: float | None = None) -> ScriptResult:
        """Run one script as ONE pipeline on the session's long-lived pool (probes/batch.py composes a
        whole capture into one script, so a capture is one pipeline)."""

    def copy_file(self, source: Path, destination: str) -> None:
        """Copy a local file to the VM over the same transport."""

    def close(self) -> None:
        """Close the pool/connection; safe to call twice."""


@runtime_checkable
class Remoting(Protocol):
    kind: str
    cert_validation: bool

    def prepare(self) -> None:
        """Load what ``open`` will need, in the background: called once the run's VMs are in the lab."""

    def open(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials) -> RemoteSession:
        """Connect (bounded by the lab's connect timeout)."""


class SessionIdentity:
    """What every transport's session knows about its VM; secrets are registered for redaction at once."""

    def __init__(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials, *, port: int,
                 staging_dir: str, cert_validation: bool) -> None:
        from patchgate.secrets.redact import redactor

        self.vm = vm_name
        self.address = endpoint.address
        self.host = endpoint.hostname or endpoint.address
        self.port = port
        self.staging_dir = staging_dir
        self.cert_validation = cert_validation
        self.reconnects = 0
        self.pipelines = 0
        self._credentials = credentials
        redactor.register(credentials.password.get_secret_value())


def result_json(result: ScriptResult) -> dict:
    """The single JSON document an op script prints."""
    if not result.output:
        raise RemotingError(f"{result.name}: no output; errors: {'; '.join(result.errors) or 'none'}")
    return json.loads(result.output[-1])
