"""``hypervisor.settings`` of a vSphere lab (docs/lab-file.md, hypervisor settings): the model the vSphere kind
declares, so the engine's lab model names no kind's settings."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from patchgate.config.strict import Strict


class VsphereSettings(Strict):
    url: str = Field(..., description="https://vcenter.example.com/sdk")
    datacenter: str | None = None
    cert_validation: bool = True
    ca_bundle: Path | None = None
    thumbprint: str | None = Field(None, description="pinned SHA-256 fingerprint of the server certificate")
    credentials_path: str | None = Field(None, description="secrets path holding username/password")
    tools_timeout: float = Field(300, gt=0)
    heartbeat_timeout: float = Field(300, gt=0)
    ip_timeout: float = Field(300, gt=0)
    task_timeout: float = Field(1800, gt=0)
    keep_failure_snapshot: bool = False
    run_tag_field: str = "patchgate.run"
    reboot_down_timeout: float = Field(120, gt=0, description="after a guest reboot request: wait this long "
                                       "for VMware Tools to stop before waiting for readiness again")
    reap_max_age: float = Field(43200, gt=0, description="seconds after which a run tag written on another "
                                "host counts as abandoned (the reaper cannot check that host's processes)")
    guests: str = Field("real", description="who plays the VMs' guest OS: `real`, or the name of the lab kind "
                        "that simulates them on a simulator vCenter (docs/lab-file.md)")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://vcenter.example.com/sdk")
        return value

    @field_validator("thumbprint")
    @classmethod
    def _thumb(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hexed = value.replace(":", "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", hexed):
            raise ValueError("must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
        return hexed
