"""Build the hypervisor, remoting and secrets provider a lab file asks for, through its lab kind."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchgate.config.lab import Lab
from patchgate.hypervisors.base import Hypervisor
from patchgate.labkinds import KindOptions, LabParts, lab_kind, require_catalog_reader
from patchgate.remoting.base import Remoting
from patchgate.secrets.base import SecretsProvider


@dataclass
class LabComponents:
    hypervisor: Hypervisor
    remoting: Remoting
    secrets: SecretsProvider
    parts: LabParts

    @property
    def handle(self) -> Any:
        """The lab kind's own object for the run (the twin's lab, say), for the kind's tests and tools."""
        return self.parts.handle

    @property
    def cert_validation(self) -> dict[str, bool]:
        return {"hypervisor": bool(getattr(self.hypervisor, "cert_validation", True)),
                "remoting": bool(getattr(self.remoting, "cert_validation", True)),
                "secrets": bool(getattr(self.secrets, "cert_validation", True))}

    def close(self) -> None:
        for closer in (self.hypervisor.close, self.secrets.close, *self.parts.closers):
            try:
                closer()
            except Exception:  # closing one part must not keep the others open
                pass


def build_components(lab: Lab, *, kind_catalogs: list[Path] | None = None, stop: threading.Event,
                     kind_inputs_checked: bool = False, inject_faults: bool = True) -> LabComponents:
    """The run's hypervisor (from the lab's kind), its remoting and its secrets. ``kind_catalogs``: the
    ``--twin-catalog`` folders, for the kinds that read catalogues; ``kind_inputs_checked``: those were checked
    already (``patchgate validate`` does)."""
    from patchgate.remoting import build_remoting
    from patchgate.secrets import build_secrets

    kind = lab_kind(lab.hypervisor.kind, source=str(lab.source) if lab.source else None)
    options = KindOptions(catalogs=list(kind_catalogs or []), inputs_checked=kind_inputs_checked,
                          inject_faults=inject_faults)
    require_catalog_reader(lab, options)
    secrets = build_secrets(lab.secrets, lab)
    try:
        parts = kind.build(lab, secrets, options, stop)
    except BaseException:
        secrets.close()
        raise
    try:
        remoting = parts.remoting or build_remoting(lab.remoting)
    except BaseException:  # a bad remoting setting leaves no lab part open
        for closer in (parts.hypervisor.close, *parts.closers):
            closer()
        raise
    return LabComponents(hypervisor=parts.hypervisor, remoting=remoting, secrets=parts.secrets, parts=parts)
