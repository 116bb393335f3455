"""vSphere as a lab kind: the provider for ``hypervisor.kind: vsphere``, with the guests another kind may play."""

from __future__ import annotations

import threading

from patchgate.hypervisors.vsphere.settings import VsphereSettings
from patchgate.labkinds import BaseLabKind, KindOptions, LabParts, guest_kind_name, lab_kind


class VsphereKind(BaseLabKind):
    name = "vsphere"
    settings_model = VsphereSettings

    def build(self, lab, secrets, options: KindOptions, stop: threading.Event) -> LabParts:  # type: ignore[no-untyped-def]
        from patchgate.hypervisors.vsphere.provider import VsphereHypervisor

        hypervisor = VsphereHypervisor(lab.hypervisor.settings, secrets.hypervisor_credentials(), lab.name)
        parts = LabParts(hypervisor=hypervisor, secrets=secrets)
        guests = guest_kind_name(lab)
        if guests is not None:  # a simulator lab: another kind plays the VMs' guest OS
            parts = lab_kind(guests, source=str(lab.source) if lab.source else None).attach_guests(
                parts, lab, options, stop)
        return parts


KIND = VsphereKind()
