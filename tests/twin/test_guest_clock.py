"""The twin's guests keep their own clock, and write events when they happen, never ahead of time.

A guest whose clock is 4 minutes behind stamps its boot, its events and its captures on that clock; an event a
behaviour writes 200 Windows seconds after the install (1 s on the twin) is not in a capture taken before then and
is in one taken after, stamped with the guest's time at that moment.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from patchgate.config import load_lab
from patchgate.probes.batch import compose_capture, parse_capture
from patchgate.remoting.base import ScriptResult
from patchgate_twin.behaviours import Behaviour, apply_install
from patchgate_twin.catalog import Catalog
from patchgate_twin.lab import TwinLab
from patchgate_twin.model import TIME_SCALE
from patchgate_twin.shell import Statement
from patchgate_twin.shell_impl import TwinShell

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
SKEW = -240.0
VM = "ws25-mbr-01"
LATE_CRASH = Behaviour.model_validate({
    "kb": "KB9912002", "title": "a crash 200 s after the install", "classification": "synthetic", "synthetic": True,
    "restart": "never", "effects": [{"add_event": {"provider_name": "Service Control Manager", "id": 7034,
                                                   "level": "Error", "message": "Spooler terminated unexpectedly.",
                                                   "properties": ["Print Spooler"], "offset_seconds": 200}}]})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def _lab(clock: Clock) -> TwinLab:
    lab = load_lab(ROOT / "labs" / "twin.yaml")
    settings = lab.hypervisor.settings.model_copy(update={"noise": "quiet", "clock_skew": SKEW})
    lab = lab.model_copy(update={"hypervisor": lab.hypervisor.model_copy(update={"settings": settings})})
    twin = TwinLab(lab, Catalog.load(), clock=clock)
    twin.revert(VM)
    twin.power_on(VM)
    return twin


def _events(shell: TwinShell, since: dt.datetime):
    script = compose_capture(["events"], since=since)
    out = shell.run_pipeline(VM, [Statement(script.body, dict(script.parameters))], [])
    capture = parse_capture(ScriptResult(name="capture", output=list(out.output)), vm=VM)
    return capture.posture


def test_the_guest_stamps_on_its_own_clock_and_events_appear_when_they_happen() -> None:
    clock = Clock()
    twin = _lab(clock)
    host = twin.host(VM)
    guest_t0 = T0 + dt.timedelta(seconds=SKEW)
    assert host.last_boot_up_time == guest_t0 and twin.guest_now(VM) == guest_t0
    apply_install(host, LATE_CRASH, twin.guest_now(VM))
    shell = TwinShell(twin)
    clock.now = T0 + dt.timedelta(seconds=200 * TIME_SCALE / 2)
    early = _events(shell, since=guest_t0)
    assert early.captured_at == clock.now + dt.timedelta(seconds=SKEW)
    assert not early.area("events").with_ids([7034])  # not written yet
    clock.now = T0 + dt.timedelta(seconds=200 * TIME_SCALE)
    late = _events(shell, since=guest_t0).area("events").with_ids([7034])
    assert [e.time_created for e in late] == [guest_t0 + dt.timedelta(seconds=200 * TIME_SCALE)]
    on_controller_clock = _events(shell, since=T0).area("events").with_ids([7034])
    assert not on_controller_clock  # a Since on the controller's clock would miss it: the engine converts it
