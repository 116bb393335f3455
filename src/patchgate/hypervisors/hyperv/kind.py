"""Hyper-V as a lab kind: the provider for ``hypervisor.kind: hyperv``, with the guests another kind may play."""

from __future__ import annotations

import threading
from typing import Any

from patchgate.hypervisors.hyperv.settings import HypervSettings
from patchgate.labkinds import BaseLabKind, KindOptions, LabParts, guest_kind_name, lab_kind


class HypervKind(BaseLabKind):
    name = "hyperv"
    settings_model = HypervSettings
    remoting_kinds = ("psdirect",)  # PowerShell Direct to the guests, through their host

    def check_inputs(self, lab: Any, options: KindOptions) -> Any:
        from patchgate.hypervisors.hyperv.provider import host_remoting

        host_remoting(lab)  # the hosts are reached over psrp: anything else is bad input (exit 4)
        return None  # the guests' kind, when another one plays them, checks its own inputs (labkinds.kinds_of)

    def build(self, lab, secrets, options: KindOptions, stop: threading.Event) -> LabParts:  # type: ignore[no-untyped-def]
        from patchgate.hypervisors.hyperv.provider import HypervHypervisor, host_remoting

        guests = guest_kind_name(lab)
        if guests is not None:  # a rehearsal lab: another kind serves the host and plays the VMs' guest OS
            parts = LabParts(hypervisor=None, secrets=secrets)  # type: ignore[arg-type]
            return lab_kind(guests, source=str(lab.source) if lab.source else None).attach_guests(
                parts, lab, options, stop)
        direct = lab.remoting.kind == "psdirect"
        hypervisor = HypervHypervisor(lab.hypervisor.settings, host_remoting(lab), secrets.hypervisor_credentials(),
                                      lab.name, guest_addresses=not direct, stop=stop)
        return LabParts(hypervisor=hypervisor, secrets=secrets, remoting=psdirect_remoting(lab, hypervisor))

    def run_facts(self, lab: Any) -> dict[str, Any]:
        settings = lab.hypervisor.settings
        return {"hyperv": {"hosts": [h.name for h in settings.all_hosts], "checkpoint_type": settings.checkpoint_type,
                           "guests": settings.guests}}


def psdirect_remoting(lab: Any, hypervisor: Any) -> Any:
    """PowerShell Direct through ``hypervisor``'s hosts when the lab asks for it (None: the engine builds its own)."""
    if lab.remoting.kind != "psdirect":
        return None
    from patchgate.hypervisors.hyperv.psdirect import PsdirectRemoting
    from patchgate.hypervisors.hyperv.psdirect_settings import psdirect_settings

    return PsdirectRemoting(hypervisor, psdirect_settings(lab))


KIND = HypervKind()
