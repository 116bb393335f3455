"""One violation per invariant: a twin behaviour breaks exactly one thing and exactly that invariant fails (plus the
ones the catalogue declares it necessarily trips), with the VM and the change named in a before/after table."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchgate_twin.behaviours import INVARIANT_IDS
from tests.invariants.catalogue_runs import CatalogueRuns, vm_name
from tests.invariants.test_catalogue_table import JUDGED_THROUGH_WSUS

pytestmark = pytest.mark.slow

# invariant -> (KB that violates it, image, words the failure message must contain to name the change)
VIOLATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "hotpatch.enrollment": ("KB9900012", "ws2025-dc-hotpatch-oct2025", ("HotPatchTableSize", "4096")),
    "hotpatch.arc_agent": ("KB9900014", "ws2025-dc-hotpatch-oct2025", ("himds", "Running", "Stopped")),
    "hotpatch.no_restart": ("KB9900016", "ws2025-dc-hotpatch-oct2025", ("RestartNeeded", "LastBootUpTime")),
    "hotpatch.build": ("KB9900017", "ws2025-dc-hotpatch-oct2025", ("26100.6899", "26100.6900")),
    "hotpatch.track": ("KB5070881", "ws2025-dc-hotpatch-oct2025", ("KB5070881", "not installed", "installed")),
    "hotpatch.reboot_pending": ("KB9900015", "ws2025-dc-hotpatch-oct2025", ("CBS RebootPending", "True")),
    "wsus.role": ("KB9900022", "ws2025-dc-wsus-oct2025", ("UpdateServices installed", "True", "False")),
    "wsus.services": ("KB9900021", "ws2025-dc-wsus-oct2025", ("MSSQL$MICROSOFT##WID", "Running", "Stopped")),
    "wsus.app_pool": ("KB9900018", "ws2025-dc-wsus-oct2025", ("WsusPool", "Started", "Stopped")),
    "wsus.ports": ("KB9900019", "ws2025-dc-wsus-oct2025", ("TCP 8530", "not listening")),
    "wsus.sync": ("KB9900020", "ws2025-dc-wsus-oct2025", ("Result", "Succeeded", "Failed")),
    "wsus.exploitation_indicators": ("KB9900023", "ws2025-dc-wsus-oct2025", ("event 7053", "InvalidCastException")),
    "services.auto_start_running": ("KB9900001", "ws2025-dc-hotpatch-oct2025", ("CryptSvc", "Running", "Stopped")),
    "services.configuration": ("KB9900002", "ws2025-dc-hotpatch-oct2025", ("Spooler", "start_mode", "Auto", "Manual")),
    "services.scm_failures": ("KB9900003", "ws2025-dc-hotpatch-oct2025", ("W32Time", "7031")),
    "services.new_services": ("KB9900005", "ws2025-dc-hotpatch-oct2025", ("PgUpdateHelper", "7045", "uphelper.exe")),
    "firewall.profiles": ("KB9900009", "ws2025-dc-hotpatch-oct2025",
                          ("Public", "default_inbound_action", "Block", "Allow")),
    "firewall.rules": ("KB9900007", "ws2025-dc-hotpatch-oct2025", ("RemoteDesktop-UserMode-In-UDP", "enabled")),
    "firewall.exposure": ("KB9900008", "ws2025-dc-hotpatch-oct2025",
                          ("UpdateHelper-In-TCP", "4444", "REMOTE ADDRESS ANY")),
    "firewall.listening_ports": ("KB9900010", "ws2025-dc-hotpatch-oct2025", ("TCP/8080", "(added)", "uphelper.exe")),
    "firewall.core_services": ("KB9900011", "ws2025-dc-hotpatch-oct2025", ("mpssvc", "Running", "Stopped")),
    "management.reachable": ("KB9900025", "ws2025-std-member-oct2025", ("refuses remoting", "WinRM", "5985")),
}


def test_every_invariant_has_a_violation() -> None:
    """The catalogue's package runs violate every invariant but those judged only on what WSUS offered; an
    install through WSUS violates those (tests/e2e/test_wsus_validate.py)."""
    assert set(VIOLATIONS) == set(INVARIANT_IDS) - JUDGED_THROUGH_WSUS
    wsus_run = (Path(__file__).resolve().parents[1] / "e2e" / "test_wsus_validate.py").read_text(encoding="utf-8")
    assert all(f'"{invariant}"' in wsus_run for invariant in JUDGED_THROUGH_WSUS)


@pytest.mark.parametrize("invariant", sorted(VIOLATIONS))
def test_exactly_that_invariant_fails(catalogue_runs: CatalogueRuns, invariant: str) -> None:
    kb, image, words = VIOLATIONS[invariant]
    declared = set(catalogue_runs.catalog.behaviour(kb).expect[image].fails)
    assert invariant in declared, f"the catalogue does not say {kb} trips {invariant} on {image}"
    run, vm = catalogue_runs.runs[kb], vm_name(image)
    assert run.verdict(vm) == "block", run.explain(vm)
    assert run.failed(vm) == declared, run.explain(vm)
    message = run.message(vm, invariant)
    assert message.startswith(f"{vm} ("), message  # the headline names the VM
    assert "before" in message and "after" in message and "---" in message, message  # a before/after table
    for word in words:
        assert word in message, f"{invariant}: {word!r} missing from the failure message:\n{message}"
    assert len(message.splitlines()) <= 30, f"{invariant}: a failure message is a small table, not a dump"
