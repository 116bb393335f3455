"""What an install reports, as DISM / Add-WindowsPackage would: the result codes (docs/twin.md "install results")
and the outcome of one install, with the twin's fault flags."""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_SUCCESS = 0
EXIT_REBOOT_REQUIRED = 3010  # ERROR_SUCCESS_REBOOT_REQUIRED
CBS_E_NOT_APPLICABLE = -2146498530  # 0x800F081E, dism.exe "The specified package is not applicable to this image."
CBS_E_INSTALLERS_FAILED = -2146498270  # 0x800F0922
WU_S_ALREADY_INSTALLED = 2359302  # 0x00240006
TWIN_E_UNKNOWN_KB = -2145124329  # 0x80240017 WU_E_NOT_APPLICABLE: the twin has no behaviour for the KB


def hresult(code: int) -> str:
    """0x-form of a (possibly negative) 32-bit result code."""
    return f"0x{code & 0xFFFFFFFF:08X}"


@dataclass
class InstallOutcome:
    """What one install did, as DISM/Add-WindowsPackage would report it, plus the twin's fault flags."""

    kb: str
    exit_code: int
    restart_needed: bool
    log: list[str] = field(default_factory=list)
    failed: bool = False
    not_applicable: bool = False
    already_installed: bool = False
    hangs: bool = False  # the install never finishes (the caller waits until its timeout)
    never_ready_after_reboot: bool = False  # the guest does not come back from the install's restart
    effects_applied: int = 0
    effects_pending: int = 0

    @property
    def hresult(self) -> str:
        return hresult(self.exit_code)

    @property
    def message(self) -> str:
        return self.log[-1] if self.log else ""
