"""The settle window: after the install (and its restart) the post capture waits until the guest has settled.

A Windows server that has just booted is not done starting: delayed auto-start services start "after other
auto-start services are started plus a short delay of approximately two minutes", with "no specific time
guarantee" (MS-SCMR 2.2.33, https://learn.microsoft.com/openspecs/windows_protocols/ms-scmr/805b8296-863d-4d1e-8ae8-f639adf8c6cb;
https://learn.microsoft.com/windows/win32/api/winsvc/ns-winsvc-service_delayed_auto_start_info). Capturing as
soon as WinRM answers would report them stopped, and would miss what a crash writes seconds after the install.
The guest has settled when no service is in a pending state and every delayed-start service that ran at the
baseline runs again, and (after the install) at least ``timeouts.settle_min`` has passed: what a service that
crashes seconds after an install writes to the log is there by then, since Windows writes events when they
happen. No look is taken before that shortest settle has passed, since a look then cannot end the wait: one
look at its end instead of one every few seconds (with the lab file's defaults, 1 pipeline instead of about 20 per
VM). The wait is bounded by ``timeouts.settle`` (docs/lab-file.md), after which the capture is taken anyway
and the checks judge what they see. A look that fails (a WSMan error) is one look: the next is taken, since a
capture taken before the delayed starts would see them stopped and block a good update; but a guest whose looks
keep failing (``failed_looks`` in a row: the lab's ``retries.count`` + 1) is not settling, it is not answering, and
the step says so at once instead of polling out the window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from patchgate.errors import LabError
from patchgate.model.stable import per_user_template

PENDING_STATES = frozenset({"Start Pending", "Stop Pending", "Continue Pending", "Pause Pending"})


@dataclass(frozen=True)
class SettleResult:
    settled: bool
    waited_s: float
    polls: int
    waiting_for: tuple[str, ...]  # what was still unsettled at the last poll

    @property
    def detail(self) -> str:
        if self.settled:
            return f"settled after {self.waited_s:.1f}s ({self.polls} look(s))"
        return (f"not settled within the window ({self.waited_s:.1f}s, {self.polls} look(s)): still waiting for "
                f"{', '.join(self.waiting_for[:8])}")


def awaited(services: Mapping[str, object], *, ran: bool = True) -> frozenset[str]:
    """Delayed-start services to give their chance: those that ran at the baseline (``ran``), or, before the
    baseline, every delayed auto-start service (trigger-start and per-user ones start on their own terms)."""
    return frozenset(name for name, s in services.items()
                     if getattr(s, "automatic", False) and (getattr(s, "running", False) or not ran)
                     and getattr(s, "delayed_auto_start", False) and not getattr(s, "trigger_start", False)
                     and per_user_template(name, services) is None)


def unsettled(services: Mapping[str, object], wanted: frozenset[str]) -> tuple[str, ...]:
    pending = [f"{name} ({getattr(s, 'state', '?')})" for name, s in services.items()
               if getattr(s, "state", None) in PENDING_STATES]
    missing = [f"{name} (delayed start)" for name in sorted(wanted)
               if not getattr(services.get(name), "running", False)]
    return tuple(sorted(pending) + missing)


def wait_settled(look: Callable[[], Mapping[str, object]], wanted: frozenset[str] | None, window: float,
                 stop: threading.Event, *, at_least: float = 0.0, failed_looks: int = 3) -> SettleResult:
    """Look at the guest's services until it has settled or ``window`` seconds passed (``stop`` ends it early);
    ``wanted`` None: the delayed-start services of each look (before the baseline). ``at_least``: the guest has
    not settled before that many seconds (capped by ``window``); the first look is taken after them.
    ``failed_looks``: that many failed looks in a row raise the last failure."""
    began = time.monotonic()
    interval = min(5.0, max(0.2, window / 100))
    at_least = min(at_least, window)
    polls = failures = 0
    if at_least > 0 and stop.wait(at_least):  # a look before the shortest settle could not end the wait
        return SettleResult(False, time.monotonic() - began, polls, ("the shortest settle",))
    while True:
        polls += 1
        failed: LabError | None = None
        try:
            services = look()
        except LabError as exc:  # one look that failed is one look: the next is taken while the window lasts
            failed = exc
            failures += 1
            if failures >= max(1, failed_looks):
                raise
            left: tuple[str, ...] = (f"a look that failed ({exc})",)
        else:
            failures = 0
            left = unsettled(services, awaited(services, ran=False) if wanted is None else wanted)
        waited = time.monotonic() - began
        if not left and waited >= at_least:
            return SettleResult(True, waited, polls, ())
        pause = interval if left else min(interval, at_least - waited)
        if (left and waited + interval > window) or stop.wait(pause):
            if failed is not None:
                raise failed  # the window ended on a failed look: the step says it could not look
            return SettleResult(False, time.monotonic() - began, polls, left or ("the shortest settle",))


def looks_in(detail: str) -> int:
    """How many looks a settle step's detail says it took (each is one pipeline on the guest)."""
    import re

    match = re.search(r"(\d+) look\(s\)", detail)
    return int(match.group(1)) if match else 0


__all__ = ["looks_in", "SettleResult", "awaited", "unsettled", "wait_settled"]
