"""How the candidate reaches the lab's VMs: a package installed with DISM, or WSUS offering it (docs/wsus.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from patchgate.config.strict import Strict

# IUpdateServer.CreateComputerTargetGroup: names under 256 characters, without these characters (WSUS SDK,
# https://learn.microsoft.com/en-us/previous-versions/windows/desktop/aa349860(v=vs.85)).
GROUP_FORBIDDEN = set("~!@#$^&*()=+[]\\{}|;:'\"<>/")


class InstallSettings(Strict):
    via: Literal["package", "wsus"] = Field(
        "package", description="package: stage the candidate's files and install them with DISM; wsus: approve "
        "the candidate for the lab's group on its WSUS server and let each VM install what WSUS offers it")


class WsusSettings(Strict):
    """The lab's WSUS: which server approves the candidate, and for which computer target group."""

    server: str = Field(..., min_length=1, max_length=255, description="a lab VM with role wsus-server")
    group: str = Field(..., min_length=1, max_length=255, description="computer target group of the lab's VMs "
                       "(created if missing; the VMs join it by client-side targeting)")
    url: str | None = Field(None, description="the URL the VMs use for WUServer/WUStatusServer; default: "
                            "http(s)://<the server's FQDN>:<its port>, as the server reports them")
    task_timeout: float = Field(1800, gt=0, description="seconds the scan/download/install task may take per VM")

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
