"""What stays the same on a healthy Windows server across a boot, so checks compare that and not the noise.

Each rule names its source (docs/invariants.md, "Noise the checks ignore"): per-user service instances get a new
suffix at every logon, the dynamic port range is handed out afresh, CBS queues clean-up entries after servicing,
LastBootUpTime drifts. The suites use these helpers; none of them ever hides a change of something stable.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

# https://learn.microsoft.com/windows/application-management/per-user-services-in-windows: "<template>_<LUID>"
PER_USER_SUFFIX = re.compile(r"^(?P<template>.+)_(?P<suffix>[0-9a-fA-F]{4,8})$")
# Dynamic (ephemeral) range since Windows Server 2008 (KB 929851): 49152-65535
DYNAMIC_LOW = 49152
# CBS queues files to delete at the next boot under WinSxS\Temp (experience; [U] documented)
CBS_CLEANUP = re.compile(r"\\WinSxS\\Temp\\(PendingDeletes|InFlight)\\", re.IGNORECASE)
BOOT_START_IDS = frozenset({6005, 6008, 12})  # EventLog started / unexpected shutdown / OS started
RESTART_IDS = frozenset({6005, 6006, 6008, 1074, 12, 13})
# How far LastBootUpTime may move without a restart: drift (sub-second) plus a clock step after a revert (the
# guest's time service correcting a snapshot's clock); a larger jump with no restart event is reported, not hidden.
BOOT_TIME_TOLERANCE = dt.timedelta(minutes=10)

T = TypeVar("T")


def per_user_template(name: str, known: Iterable[str]) -> str | None:
    """The template a per-user instance was made from, when ``name`` is ``<template>_<hex>`` and the template
    is a service of its own (templates are registered services; an instance's suffix changes each logon)."""
    m = PER_USER_SUFFIX.match(name)
    if m is None:
        return None
    template = m.group("template")
    lowered = {k.lower() for k in known}
    return template if template.lower() in lowered else None


def collapse_per_user(services: Mapping[str, T]) -> dict[str, T]:
    """Services keyed so per-user instances meet their counterparts across boots: ``CDPUserSvc_1a2b3`` becomes
    ``CDPUserSvc_*`` (the first instance of each template is kept)."""
    out: dict[str, T] = {}
    for name, item in services.items():
        template = per_user_template(name, services)
        key = f"{template}_*" if template else name
        out.setdefault(key, item)
    return out


def cbs_cleanup(entry: str) -> bool:
    """A PendingFileRenameOperations entry CBS writes after servicing (PendingDeletes / InFlight)."""
    return bool(CBS_CLEANUP.search(entry))


def dynamic(port: int) -> bool:
    return port >= DYNAMIC_LOW


@dataclass(frozen=True)
class DynamicListeners:
    """The TCP listeners one process holds in the dynamic range (RPC endpoints get a new port at each boot):
    compared by owner and count, never by port number."""

    protocol: str
    owner: str
    count: int
    local_addresses: tuple[str, ...]


def stable_listeners(listeners: Iterable[object]) -> tuple[dict[tuple[str, object], object], int]:
    """Listeners keyed by what survives a boot: fixed ports by (protocol, port) as PortsPosture.keyed() does,
    dynamic-range TCP listeners by (protocol, "<process> (dynamic)"); dynamic-range UDP endpoints are client
    sockets and socket pools (port exhaustion article, KB 929851) and are left out. Returns the keyed listeners
    and how many UDP endpoints were left out."""
    from patchgate.model.posture import PortsPosture

    items = list(listeners)
    fixed = [i for i in items if not dynamic(i.local_port)]  # type: ignore[attr-defined]
    keyed: dict[tuple[str, object], object] = dict(PortsPosture(listeners=tuple(fixed)).keyed())  # type: ignore[arg-type]
    groups: dict[tuple[str, str], list[object]] = {}
    skipped = 0
    for item in items:
        if not dynamic(item.local_port):  # type: ignore[attr-defined]
            continue
        if item.protocol == "UDP":  # type: ignore[attr-defined]
            skipped += 1
            continue
        owner = item.process_name or "?"  # type: ignore[attr-defined]
        groups.setdefault((item.protocol, owner), []).append(item)  # type: ignore[attr-defined]
    for (protocol, owner), group in sorted(groups.items()):
        keyed[(protocol, f"{owner} (dynamic)")] = DynamicListeners(
            protocol, owner, len(group), tuple(sorted({g.local_address for g in group})))  # type: ignore[attr-defined]
    return keyed, skipped


DYNAMIC_DIFF_FIELDS = ("count", "local_addresses")


@dataclass(frozen=True)
class RestartEvidence:
    """Whether a restart happened between two captures, from positive evidence only."""

    boot_id_before: int | None
    boot_id_after: int | None
    events: tuple[str, ...]
    boot_time_moved: dt.timedelta | None

    @property
    def boot_id_changed(self) -> bool:
        return None not in (self.boot_id_before, self.boot_id_after) and self.boot_id_before != self.boot_id_after

    @property
    def restarted(self) -> bool:
        """BootId changed, or a start event was logged since the baseline."""
        return self.boot_id_changed or any(e.split()[0] in {str(i) for i in BOOT_START_IDS} for e in self.events)

    @property
    def unexplained_boot_time(self) -> bool:
        """LastBootUpTime moved further than drift and a clock step explain, with no other evidence."""
        return (not self.restarted and self.boot_time_moved is not None
                and abs(self.boot_time_moved) > BOOT_TIME_TOLERANCE)

    @property
    def unproven(self) -> bool:
        """Neither BootId nor restart events could be read: the restart question cannot be answered."""
        return None in (self.boot_id_before, self.boot_id_after)


def restart_evidence(before_reboot: object, after_reboot: object, before_boot: dt.datetime | None,
                     after_boot: dt.datetime | None) -> RestartEvidence:
    """From the baseline's and the post capture's reboot areas and their LastBootUpTime values."""
    events = tuple(f"{e.id} {e.provider_name} {e.time_created:%H:%M:%S}" if e.time_created else
                   f"{e.id} {e.provider_name}" for e in getattr(after_reboot, "boot_events", ())
                   if e.id in RESTART_IDS)
    moved = after_boot - before_boot if before_boot and after_boot else None
    return RestartEvidence(getattr(before_reboot, "boot_id", None), getattr(after_reboot, "boot_id", None),
                           events, moved)


__all__ = ["BOOT_TIME_TOLERANCE", "DYNAMIC_DIFF_FIELDS", "DYNAMIC_LOW", "DynamicListeners", "stable_listeners", "RestartEvidence", "cbs_cleanup", "collapse_per_user", "dynamic",
           "per_user_template", "restart_evidence"]
