"""Is the guest up? VMware Tools running, a live heartbeat, an IP address: each with its own deadline.

The three conditions are waited for in order on one PropertyCollector watch (server-side waits, no
sleeps). Each phase ends at its own timeout from the lab file (tools_timeout, heartbeat_timeout,
ip_timeout), never later than the caller's overall ready timeout, and a timeout names the condition
that was not met and the last values seen, because "not ready" alone is useless at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from patchgate.hypervisors.vsphere.settings import VsphereSettings
from patchgate.errors import HypervisorError, LabTimeout
from patchgate.hypervisors.vsphere.collector import Watch

GUEST_PATHS = ("runtime.powerState", "guest.toolsRunningStatus", "guest.guestState", "guestHeartbeatStatus",
               "guest.ipAddress", "guest.hostName", "guest.net")

Values = dict[str, Any]


def tools_running(v: Values) -> bool:
    return str(v.get("guest.toolsRunningStatus")) == "guestToolsRunning"


def heartbeat_ok(v: Values) -> bool:
    """Green heartbeat; or, where the server reports no heartbeat colour, tools running in a running guest."""
    if str(v.get("guestHeartbeatStatus")) == "green":
        return True
    return tools_running(v) and str(v.get("guest.guestState")) == "running"


def _usable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return not (ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def pick_address(v: Values) -> str | None:
    """The guest's primary address; IPv4 first, link-local (169.254/fe80) never (APIPA means no DHCP yet)."""
    candidates: list[str] = []
    primary = v.get("guest.ipAddress")
    if primary:
        candidates.append(str(primary))
    for nic in v.get("guest.net") or []:
        candidates.extend(str(a) for a in (getattr(nic, "ipAddress", None) or []))
    usable = [a for a in candidates if _usable(a)]
    v4 = [a for a in usable if ":" not in a]
    return (v4 or usable or [None])[0]


@dataclass(frozen=True)
class Phase:
    name: str
    setting: str
    check: Callable[[Values], bool]
    shows: tuple[str, ...]


PHASES = (
    Phase("VMware Tools running", "tools_timeout", tools_running, ("guest.toolsRunningStatus",)),
    Phase("guest heartbeat", "heartbeat_timeout", heartbeat_ok,
          ("guestHeartbeatStatus", "guest.toolsRunningStatus", "guest.guestState")),
    Phase("IP address", "ip_timeout", lambda v: pick_address(v) is not None, ("guest.ipAddress",)),
)


def wait_ready(si: vim.ServiceInstance, vm: vim.VirtualMachine, name: str, settings: VsphereSettings,
               timeout: float, *, need_address: bool = True) -> tuple[str | None, str | None]:
    """Returns (address, hostname); raises LabTimeout naming the VM and the unmet condition."""
    overall = time.monotonic() + timeout
    phases = PHASES if need_address else PHASES[:2]
    with Watch(si, vm, GUEST_PATHS) as watch:
        for phase in phases:
            own = float(getattr(settings, phase.setting))
            deadline = min(time.monotonic() + own, overall)
            while not phase.check(watch.values):
                if str(watch.values.get("runtime.powerState")) == "poweredOff":
                    raise HypervisorError(f"waiting for {phase.name}: the VM is powered off", vm=name,
                                          step="ready")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = ", ".join(f"{p}={watch.values.get(p)}" for p in phase.shows)
                    limit = (f"{phase.setting} {own:g}s" if deadline < overall
                             else f"the ready timeout {timeout:g}s")
                    raise LabTimeout(f"not ready: no {phase.name} within {limit} (last seen: {seen})",
                                     vm=name, step="ready")
                watch.wait(min(remaining, 30.0))
        hostname = watch.values.get("guest.hostName")
        return pick_address(watch.values), (str(hostname) if hostname else None)


def wait_tools_down(si: vim.ServiceInstance, vm: vim.VirtualMachine, timeout: float) -> bool:
    """After a guest reboot request: wait until Tools stop (the guest is really going down)."""
    deadline = time.monotonic() + timeout
    with Watch(si, vm, ("guest.toolsRunningStatus",)) as watch:
        while tools_running(watch.values):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            watch.wait(min(remaining, 30.0))
    return True
