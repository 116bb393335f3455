"""A candidate update: which KB, what it claims to be, and the package files that carry it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

Classification = Literal["hotpatch", "baseline", "lcu", "oob", "wsus-security", "other"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageFile(_Strict):
    file: Path = Field(..., description="path relative to the candidate file")
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("must be 64 hex digits")
        return value.lower()


class References(_Strict):
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


class Candidate(_Strict):
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
        norm = value.upper()
        if not re.fullmatch(r"KB\d{6,8}", norm):
            raise ValueError("must be a KB id such as KB5070881")
        return norm

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

    @property
    def target_ubr(self) -> int:
        return int(self.target_build.split(".")[1])

    def package_path(self, package: PackageFile) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / package.file).resolve()
