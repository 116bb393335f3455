"""What ``patchgate/doctor/preflight.ps1`` would print on a twin host, with the twin's lab faults applied.

The twin's lab account is a local account with LocalAccountTokenFilterPolicy=1 (docs/twin.md), so its checks
exercise the local-account path of ``patchgate doctor``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

from patchgate_twin.faults import Fault
from patchgate_twin.model import WindowsHost
from patchgate_twin.render import iso, ps51_json

SYSTEM_DRIVE_FREE = 48 * 2**30  # a 127 GB system disk with Windows and its component store on it
DISK_FULL_FREE_MIB = 100
CLOCK_SKEW_SECONDS = 900


def _boot_id(host: WindowsHost) -> int:
    """A number that changes with every boot, as the registry's BootId does [U]."""
    digest = hashlib.sha256(host.last_boot_up_time.isoformat().encode()).digest()
    return int.from_bytes(digest[:2], "big")


def _argument(fault: Fault | None, default: int) -> int:
    return int(fault.argument) if fault and fault.argument and fault.argument.lstrip("-").isdigit() else default


def render_preflight(host: WindowsHost, faults: Mapping[str, Fault], now: dt.datetime) -> str:
    free = SYSTEM_DRIVE_FREE
    if "disk-full" in faults:
        free = _argument(faults["disk-full"], DISK_FULL_FREE_MIB) * 2**20
    if "clock-skew" in faults:
        now = now + dt.timedelta(seconds=_argument(faults["clock-skew"], CLOCK_SKEW_SECONDS))
    pending = (["Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.6899.1.7"]
               if host.reboot.cbs_packages_pending else [])
    doc = {
        "ComputerName": host.computer_name,
        "LanguageMode": "ConstrainedLanguage" if "constrained-language" in faults else "FullLanguage",
        "UserName": f"{host.computer_name}\\patchgate",
        "IsAdministrator": True,
        "LocalAccountTokenFilterPolicy": 1,
        "MaxMemoryPerShellMB": 2147483647,
        "MaxEnvelopeSizekb": 500,
        "SystemDrive": "C:",
        "FreeBytes": free,
        "PendingPackages": pending,
        "CbsRebootPending": host.reboot.cbs_reboot_pending,
        "WuRebootRequired": host.reboot.wu_reboot_required,
        "InstallationType": host.installation_type,
        "EditionID": host.edition_id,
        "CurrentBuild": host.current_build,
        "UtcNow": iso(now),
        "BootId": _boot_id(host),
        "WebAdministration": ("ok" if host.wsus.role_installed else
                              "FileNotFoundException: The specified module 'WebAdministration' was not loaded "
                              "because no valid module file was found in any module directory."),
    }
    return ps51_json(doc)
