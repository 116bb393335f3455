"""The lab file's ``staging:`` section: where each VM gets the candidate's packages from.

``harness`` (the default): every VM pulls them over HTTPS from patchgate's own content server for the run
(patchgate.remoting.content); ``share``: from a distribution point the lab already has; ``push``: patchgate
copies them through the remoting session (WSMan or SSH), for labs whose VMs cannot reach anything. ``wsus`` (the
lab's WSUS distributes them) is planned and refused until it exists, so that no lab file silently means another
source.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from patchgate.config.strict import Strict

PLANNED_SOURCES = {"wsus": "the lab's WSUS distributes the package"}
UNC_OR_URL = re.compile(r"^(\\\\[^\\]+\\[^\\]+.*|https?://\S+)$", re.IGNORECASE)


class ShareSource(Strict):
    """A distribution point the VMs read the packages from: ``path`` is a UNC folder or an HTTP(S) URL of a
    folder; the packages are found under their file names there."""

    path: str = Field(..., min_length=3, description=r"\\server\share\folder or https://server/folder")
    credentials: str | None = Field(None, description="secret reference of the account that reads the share "
                                    "(vault: a KV path holding username/password; env: <REF>_USERNAME and "
                                    "<REF>_PASSWORD, REF upper-cased with other characters than A-Z 0-9 made _); "
                                    "none: the VM's own account (docs/lab-file.md, \"The share's account\")")

    @field_validator("path")
    @classmethod
    def _unc_or_url(cls, value: str) -> str:
        if not UNC_OR_URL.match(value):
            raise ValueError(r"share.path must be a UNC path (\\server\share\folder) or an http(s):// URL")
        return value


class Staging(Strict):
    source: Literal["harness", "share", "push"] = Field(
        "harness", description="harness: the VMs pull from patchgate's HTTPS content server; share: from the "
        "lab's distribution point; push: copied through the remoting session")
    share: ShareSource | None = None
    address: str = Field("127.0.0.1", min_length=1, description="harness: the address the content server "
                         "listens on and the VMs connect to (the harness's lab-facing address)")
    port: int = Field(0, ge=0, le=65535, description="harness: the content server's port (0: any free port)")

    @field_validator("source", mode="before")
    @classmethod
    def _planned(cls, value: object) -> object:
        if isinstance(value, str) and value in PLANNED_SOURCES:
            raise ValueError(f"staging source '{value}' ({PLANNED_SOURCES[value]}) is planned, not available "
                             "yet: use harness, share or push (docs/lab-file.md, staging)")
        return value

    @model_validator(mode="after")
    def _share_given(self) -> "Staging":
        if self.source == "share" and self.share is None:
            raise ValueError("staging source 'share' needs share: {path: ..., credentials: ...}")
        if self.source != "share" and self.share is not None:
            raise ValueError(f"staging.share is used only with source 'share' (source is '{self.source}')")
        return self
