"""Management: a server the lab could manage before the update must still be manageable after it.

When the guest answered WinRM at the baseline and, after the install and the restart it demanded, the hypervisor
reports it running with an address but its remoting refuses or times out through every retry, the update broke
management (WinRM stopped, or the firewall rule its port depends on disabled): a block, with the guest's state,
address and port as evidence. A guest the hypervisor cannot see either stays lab trouble (inconclusive).
"""

from __future__ import annotations

from patchgate_pytest.invariants import applies_to, invariant
from patchgate_pytest.messages import before_after

pytestmark = applies_to("hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host")


@invariant("management.reachable", severity="blocker")
def test_guest_still_answers_remoting(reachability):
    lost = reachability.unreachable
    assert lost is None, before_after(
        reachability, "the guest runs but refuses remoting after the update's restart", [
            ("guest", "running, answered WinRM at the baseline", lost["guest"]),
            ("address:port", "-", f"{lost['address']}:{lost['port']}"),
            ("remoting", "connected", "refused or timed out through every retry")],
        hint=f"{lost['error']}. Check the WinRM service and the inbound rule for the lab's WinRM port on a kept VM "
             "(--keep-on-failure).")
