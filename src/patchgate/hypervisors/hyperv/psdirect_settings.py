"""The lab file's ``remoting`` block for ``kind: psdirect``: PowerShell Direct to the guests through their Hyper-V
host, for guests the harness has no network path to (docs/hyperv.md, "PowerShell Direct").

The Hyper-V lab kind serves this remoting itself (its ``remoting_kinds``), so the lab file's ``remoting.settings``
reach it as a mapping and are validated here (``psdirect_settings``: exit 4 naming the field).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from patchgate.config.lab import PsrpSettings
from patchgate.config.strict import Strict
from patchgate.errors import ConfigError


class PsdirectSettings(Strict):
    host: PsrpSettings = Field(default_factory=PsrpSettings, description="how the harness reaches the Hyper-V "
                               "host(s): the psrp settings (port, TLS, auth, timeouts)")
    staging_dir: str = Field(r"C:\ProgramData\patchgate\staging", description="where packages are staged on the "
                             "guest before the install")
    host_staging_dir: str = Field(r"C:\ProgramData\patchgate\psdirect", description="where a package waits on the "
                                  "host on its way to the guest (removed once copied)")


def psdirect_settings(lab: Any) -> PsdirectSettings:
    """The lab's ``remoting.settings`` as PowerShell Direct's settings; a bad one is bad input naming the field."""
    try:
        return PsdirectSettings.model_validate(lab.remoting.settings or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"PowerShell Direct settings: {first['msg']}", file=str(lab.source) if lab.source else None,
                          field=f"remoting.settings.{where}" if where else "remoting.settings") from None
