"""Two kinds of bad news, kept apart so a lab fault can never look like a verdict.

* ``ConfigError`` (exit 4): the user's input is wrong (lab, candidate, policy, twin file, option).
* ``LabError`` and subclasses: the lab misbehaved (hypervisor, remoting, secrets, timeouts).
  Suites report these as *broken*; any broken check makes the verdict inconclusive.
"""

from __future__ import annotations

EXIT_APPROVE = 0
EXIT_BLOCK = 1
EXIT_INCONCLUSIVE = 2
EXIT_INTERNAL = 3
EXIT_CONFIG = 4
EXIT_INTERRUPTED = 130


class PatchgateError(Exception):
    """Base of every error patchgate raises on purpose."""


class ConfigError(PatchgateError):
    """Bad input: names the file, the field and (when YAML gives it) the line."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None) -> None:
        self.file = file
        self.field = field
        self.line = line
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or ""
        if self.file and self.line:
            where = f"{self.file}:{self.line}"
        parts = [p for p in (where, f"field '{self.field}'" if self.field else "") if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.detail}" if prefix else self.detail


class LabError(PatchgateError):
    """The lab failed us; never a product verdict. ``vm`` and ``step`` say where."""

    def __init__(self, message: str, *, vm: str | None = None, step: str | None = None,
                 host: str | None = None) -> None:
        self.vm = vm
        self.step = step
        self.host = host
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.vm:
            where.append(f"vm {self.vm}")
        if self.host and self.host != self.vm:
            where.append(f"host {self.host}")
        if self.step:
            where.append(f"step {self.step}")
        return f"[{', '.join(where)}] {self.detail}" if where else self.detail

    def at(self, *, vm: str | None = None, step: str | None = None) -> "LabError":
        """Fill in the VM or step when a lower layer did not know them."""
        self.vm = self.vm or vm
        self.step = self.step or step
        self.args = (self._render(),)
        return self


class HypervisorError(LabError):
    """Revert, power, readiness or task failure reported by the hypervisor."""


class RemotingError(LabError):
    """WSMan/PSRP or SSH transport failure, authentication failure or remote script error."""


class RemotingAuthError(RemotingError):
    """The host refused our credentials."""


class SecretsError(LabError):
    """Vault (or the env provider) could not supply a secret; never includes the value."""


class LeaseError(LabError):
    """A VM lease could not be taken, renewed or released."""


class LeaseLost(LeaseError):
    """This run no longer holds a VM's lease (it expired, or another run holds it now): hands off that VM."""


class LabTimeout(LabError):
    """A lab operation ran past the timeout the lab file allows."""


class ProbeError(LabError):
    """A probe printed something that is not the JSON document its parser expects."""


class StagingError(LabError):
    """The candidate package could not be copied or its hash did not match on the VM."""


class InstallError(LabError):
    """The package install itself failed on the VM (not a posture regression)."""
