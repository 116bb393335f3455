"""The preflight script (``preflight.ps1``) and the facts it prints, read strictly: a missing or renamed
property is said, never guessed."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from patchgate.errors import ProbeError
from patchgate.probes.parsers import parse_datetime
from patchgate.remoting.base import RemoteSession, Script

FACT_KEYS = ("ComputerName", "LanguageMode", "UserName", "IsAdministrator", "LocalAccountTokenFilterPolicy", "MaxMemoryPerShellMB",
             "MaxEnvelopeSizekb", "SystemDrive", "FreeBytes", "PendingPackages", "CbsRebootPending",
             "WuRebootRequired", "InstallationType", "EditionID", "CurrentBuild", "UtcNow", "BootId",
             "WebAdministration")


@functools.cache
def preflight_script() -> Script:
    text = resources.files(__package__).joinpath("preflight.ps1").read_text(encoding="utf-8")
    return Script(name="preflight", body=text)


def script_hashes() -> dict[str, str]:
    """SHA-256 of the preflight script, for the evidence manifest (it runs on every VM before the install)."""
    return {"preflight.ps1": hashlib.sha256(preflight_script().body.encode("utf-8")).hexdigest()}


@dataclass(frozen=True)
class GuestFacts:
    """What preflight.ps1 printed, typed. ``None`` means the VM could not say (the check says so)."""

    computer_name: str | None
    language_mode: str | None
    user_name: str | None
    is_administrator: bool | None
    local_account_token_filter_policy: int | None
    max_memory_per_shell_mb: int | None
    max_envelope_size_kb: int | None
    system_drive: str | None
    free_bytes: int | None
    pending_packages: tuple[str, ...] | None
    cbs_reboot_pending: bool
    wu_reboot_required: bool
    installation_type: str | None
    edition_id: str | None
    current_build: str | None
    utc_now: dt.datetime | None
    boot_id: int | None
    web_administration: str | None

    @property
    def reboot_pending(self) -> bool:
        return self.cbs_reboot_pending or self.wu_reboot_required


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_facts(text: str) -> GuestFacts:
    """Parse preflight.ps1's JSON; ProbeError names what is wrong (a changed property name fails here)."""
    try:
        doc = json.loads(text.strip().lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise ProbeError(f"preflight: not JSON ({exc.msg}): {text[:80]!r}", step="preflight") from None
    if not isinstance(doc, dict):
        raise ProbeError("preflight: expected one JSON object", step="preflight")
    missing = [key for key in FACT_KEYS if key not in doc]
    if missing:
        raise ProbeError(f"preflight: missing properties {', '.join(missing)}", step="preflight")
    packages = doc["PendingPackages"]
    if isinstance(packages, str):  # 5.1 collapses a one-element array
        packages = [packages]
    return GuestFacts(
        computer_name=doc["ComputerName"], language_mode=doc["LanguageMode"] or None, user_name=doc["UserName"],
        is_administrator=doc["IsAdministrator"] if isinstance(doc["IsAdministrator"], bool) else None,
        local_account_token_filter_policy=_int(doc["LocalAccountTokenFilterPolicy"]),
        max_memory_per_shell_mb=_int(doc["MaxMemoryPerShellMB"]),
        max_envelope_size_kb=_int(doc["MaxEnvelopeSizekb"]), system_drive=doc["SystemDrive"],
        free_bytes=_int(doc["FreeBytes"]),
        pending_packages=tuple(str(p) for p in packages) if isinstance(packages, list) else None,
        cbs_reboot_pending=doc["CbsRebootPending"] is True, wu_reboot_required=doc["WuRebootRequired"] is True,
        installation_type=doc["InstallationType"], edition_id=doc["EditionID"], current_build=doc["CurrentBuild"],
        utc_now=parse_datetime(doc["UtcNow"]), boot_id=_int(doc["BootId"]),
        web_administration=doc["WebAdministration"])


def read_facts(session: RemoteSession, *, timeout: float) -> tuple[GuestFacts, str]:
    """Run the preflight script on ``session``; the facts and the raw text (evidence, transcripts)."""
    result = session.run(preflight_script(), timeout=timeout)
    if not result.output:
        detail = "; ".join(result.errors) if result.errors else "no output"
        raise ProbeError(f"preflight printed nothing ({detail[:300]})", step="preflight")
    return parse_facts(result.text), result.text
