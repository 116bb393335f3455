"""A candidate update: which KB, what it claims to be, and the package files that carry it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from patchgate.config.strict import Strict
from patchgate.model.kb import kb_id

Classification = Literal["hotpatch", "baseline", "lcu", "oob", "wsus-security", "ssu", "dotnet", "other"]
# Outside hotpatch scope: servicing stack and .NET Framework updates never move a machine off the track.
NON_OS_CLASSIFICATIONS = frozenset({"ssu", "dotnet"})


class PackageFile(Strict):
    file: Path = Field(..., description="path relative to the candidate file")
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("must be 64 hex digits")
        return value.lower()


class References(Strict):
    kb_article: HttpUrl
    cves: list[str] = Field(default_factory=list)
    other: list[HttpUrl] = Field(default_factory=list)

    @field_validator("cves")
    @classmethod
    def _cve(cls, value: list[str]) -> list[str]:
        for cve in value:
            if not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve):
                raise ValueError(f"'{cve}' is not a CVE id such as CVE-2025-59287")
        return value


class Candidate(Strict):
    kb: str
    title: str = Field(..., min_length=3)
    classification: Classification
    target_build: str = Field(..., description="CurrentBuild.UBR after install, e.g. 26100.6905")
    release_date: dt.date
    packages: list[PackageFile] = Field(..., min_length=1)
    references: References
    notes: str = ""
    source: Path | None = Field(None, exclude=True)

    @field_validator("kb")
    @classmethod
    def _kb(cls, value: str) -> str:
        return kb_id(value)

    @field_validator("title")
    @classmethod
    def _filled_in(cls, value: str) -> str:
        if value.strip().upper().startswith("TODO"):
            raise ValueError("still the placeholder 'patchgate candidate new' wrote: fill in the title from the "
                             "KB article")
        return value

    @field_validator("target_build")
    @classmethod
    def _build(cls, value: str) -> str:
        if not re.fullmatch(r"\d{5}\.\d{1,6}", value):
            raise ValueError("must be CurrentBuild.UBR such as 26100.6905")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> "Candidate":
        """Several packages (a target cumulative update and its checkpoints): exactly one file must name the KB,
        because DISM is given the target and finds the checkpoints beside it (docs/candidate.md)."""
        if len(self.packages) > 1 and len(self.target_packages) != 1:
            names = ", ".join(str(p.file) for p in self.packages)
            raise ValueError(f"packages: with several files exactly one must name {self.kb} (the target cumulative "
                             f"update; the others are its checkpoints), got {names}")
        return self

    @property
    def target_packages(self) -> list[PackageFile]:
        digits = self.kb[2:]
        return [p for p in self.packages if f"kb{digits}" in p.file.name.lower()]

    @property
    def target_package(self) -> PackageFile:
        """The package DISM installs: the only one, or the one whose file name names the candidate's KB."""
        return self.packages[0] if len(self.packages) == 1 else self.target_packages[0]

    def package_path(self, package: PackageFile) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / package.file).resolve()
