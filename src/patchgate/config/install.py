"""How the candidate reaches the lab's VMs: a package installed with DISM, or WSUS offering it (docs/wsus.md)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from patchgate.config.strict import Strict

# IUpdateServer.CreateComputerTargetGroup: names under 256 characters, without these characters (WSUS SDK,
# https://learn.microsoft.com/en-us/previous-versions/windows/desktop/aa349860(v=vs.85)).
GROUP_FORBIDDEN = set("~!@#$^&*()=+[]\\{}|;:'\"<>/")


class InstallSettings(Strict):
    via: Literal["package", "wsus"] = Field(
        "package", description="package: stage the candidate's files and install them with DISM; wsus: approve "
        "the candidate for the lab's group on its WSUS server and let each VM install what WSUS offers it")


class ExternalWsus(Strict):
    """An existing WSUS that is not a lab VM, reached over the lab's remoting (its settings; ``port``/``ssl``
    override them for this server) with the lab's secrets (env or vault; vault looks the account up under
    ``name`` in ``vm_paths``), as ``patchgate promote`` reaches a production server (docs/wsus.md)."""

    address: str = Field(..., min_length=1, max_length=255, description="host name or address to connect to")
    hostname: str | None = Field(None, min_length=1, max_length=255,
                                 description="the name its certificate / SPN carries, when not the address")
    name: str | None = Field(None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                             description="its name in evidence, the ledger and vault's vm_paths; default: address")
    port: int | None = Field(None, ge=1, le=65535, description="the remoting port, when not the lab's")
    ssl: bool | None = Field(None, description="HTTPS or not, when not as the lab's remoting")

    @property
    def label(self) -> str:
        return self.name or self.address


def _server_form(value: object) -> str:
    """A mapping is a WSUS outside the lab; anything else is read as a lab VM's name (one error, not two)."""
    return "external" if isinstance(value, (dict, ExternalWsus)) else "vm"


WsusServer = Annotated[Annotated[str, Tag("vm")] | Annotated[ExternalWsus, Tag("external")],
                       Discriminator(_server_form)]


class WsusSettings(Strict):
    """The lab's WSUS: which server approves the candidate, and for which computer target group."""

    server: WsusServer = Field(..., description="a lab VM with role "
                                       "wsus-server (its name), or an existing WSUS outside the lab ({address, "
                                       "hostname, name, port, ssl})")
    group: str = Field(..., min_length=1, max_length=255, description="computer target group of the lab's VMs "
                       "(created if missing; the VMs join it by client-side targeting)")
    url: str | None = Field(None, description="the URL the VMs use for WUServer/WUStatusServer; default: "
                            "http(s)://<the server's FQDN>:<its port>, as the server reports them")
    task_timeout: float = Field(1800, gt=0, description="seconds the scan/download/install task may take per VM")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | ExternalWsus) -> str | ExternalWsus:
        if isinstance(value, str) and not 1 <= len(value) <= 255:
            raise ValueError("a lab VM's name (1-255 characters), or {address: ...} for a WSUS outside the lab")
        return value

    @property
    def external(self) -> ExternalWsus | None:
        """The WSUS outside the lab, or None when the server is one of the lab's VMs."""
        return self.server if isinstance(self.server, ExternalWsus) else None

    @property
    def server_name(self) -> str:
        """The server's name in evidence and messages: the VM's, or the external server's label."""
        return self.server.label if isinstance(self.server, ExternalWsus) else self.server

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        bad = sorted(set(value) & GROUP_FORBIDDEN)
        if bad:
            raise ValueError(f"a WSUS computer target group name cannot contain {' '.join(bad)}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s:]+(:\d+)?/?$", value):
            raise ValueError("must be http(s)://server[:port], e.g. http://wsus01.contoso.local:8530")
        return value.rstrip("/") if value else value
