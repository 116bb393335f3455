"""What a restart does to a twin host: the events Windows logs, flags cleared, services started, queued effects."""

from __future__ import annotations

import datetime as dt

from patchgate_twin.behaviours.install import apply_logged
from patchgate_twin.behaviours.windows import image_name, start_service, stop_service
from patchgate_twin.model import EventRecord, WindowsHost


def complete_reboot(host: WindowsHost, now: dt.datetime, *, shutdown_at: dt.datetime | None = None) -> None:
    """What a restart does, at the time it does it (``shutdown_at`` the shutdown, ``now`` the boot, both on the
    guest's clock): User32 1074 and EventLog 6006 at the shutdown, Kernel-General 12 at the boot and EventLog 6005
    once the event log service is up (12 Windows seconds later, scaled), reboot flags cleared, LastBootUpTime set
    to ``now``, auto-start services started and the queued post-reboot effects applied at the boot. 6005 is logged
    "at boot time noting that the Event Log service was started", 6006 at a clean shutdown (Microsoft KB 196452,
    https://support.microsoft.com/help/196452); the 12 s delay is the twin's own figure [U]."""
    initiator = r"C:\Windows\servicing\TrustedInstaller.exe" if host.reboot.cbs_reboot_pending else \
        r"C:\Windows\system32\shutdown.exe"
    down = shutdown_at or now
    host.log_event(EventRecord("System", "User32", 1074, "Information", down,
                               f"The process {initiator} ({host.computer_name}) has initiated the restart of "
                               f"computer {host.computer_name} on behalf of user NT AUTHORITY\\SYSTEM for the "
                               "following reason: Operating System: Upgrade (Planned)",
                               [initiator, host.computer_name, "Operating System: Upgrade (Planned)",
                                "0x80020003", "restart"]))
    host.log_event(EventRecord("System", "EventLog", 6006, "Information", down, "The Event log service was stopped."))
    host.log_event(EventRecord("System", "Microsoft-Windows-Kernel-General", 12, "Information", now,
                               f"The operating system started at system time {now.isoformat()}."))
    host.log_event(EventRecord("System", "EventLog", 6005, "Information", now, "The Event log service was started."),
                   delay=12)
    host.reboot.clear_after_reboot()
    host.last_boot_up_time = now
    for svc in host.services.values():
        if svc.start_mode == "Auto" and svc.state != "Running":
            svc.state = "Running"
            start_service(host, svc)
        elif svc.start_mode in ("Manual", "Disabled") and svc.state == "Running" and \
                image_name(svc.path_name).lower() == "trustedinstaller.exe":
            svc.state = "Stopped"
            stop_service(host, svc)
    pending, host.pending_after_reboot = host.pending_after_reboot, []
    for item in pending:
        apply_logged(host, item.effect, now, [], item.kb)
