"""One behaviour: what installing one KB does to a host, as a catalogue file states it (docs/twin.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from patchgate.model.kb import kb_id
from patchgate_twin.behaviours.common import Strict, check_urls
from patchgate_twin.behaviours.conditions import Condition
from patchgate_twin.behaviours.effects import Effect
from patchgate_twin.behaviours.expect import Expect
from patchgate_twin.behaviours.offering import OfferRule, offered
from patchgate_twin.behaviours.results import CBS_E_INSTALLERS_FAILED
from patchgate_twin.model import WindowsHost


class InstallFailure(Strict):
    """``install_fails``: the install fails with this code (lab trouble, not a verdict)."""

    exit_code: int = CBS_E_INSTALLERS_FAILED
    message: str = "An error occurred applying the package."


class RestartWhen(Strict):
    when: Condition


def _restart_tag(value: Any) -> str:
    return "restart-condition" if isinstance(value, (dict, RestartWhen)) else "restart-word"


RestartSpec = Annotated[Annotated[Literal["always", "never"], Tag("restart-word")]
                        | Annotated[RestartWhen, Tag("restart-condition")], Discriminator(_restart_tag)]


class Behaviour(Strict):
    """What installing one KB does. See docs/twin.md for every key."""

    kb: str
    title: str = Field(..., min_length=3)
    classification: Literal["baseline", "hotpatch", "lcu", "oob", "wsus-security", "ssu", "dotnet", "synthetic",
                            "other"]
    build: str | None = Field(None, pattern=r"^\d{5}\.\d{1,6}$")
    released: dt.date | None = None
    synthetic: bool = False
    restart: RestartSpec = "always"
    applies_to: Condition | None = None
    not_applicable_reason: str = ""
    offered_to: list[OfferRule] = Field(default_factory=list, description="to which hosts WSUS offers it, per "
                                        "window of Microsoft's metadata (docs/twin.md, WSUS offering)")
    effects: list[Effect] = Field(default_factory=list)
    install_fails: InstallFailure | None = None
    install_hangs: bool = False
    never_ready_after_reboot: bool = False
    sources: list[str] = Field(default_factory=list)
    expect: dict[str, Expect] = Field(default_factory=dict, description="image name -> expected gate verdict")
    notes: str = ""

    _source_file: str | None = None
    _source_line: int | None = None

    @field_validator("kb")
    @classmethod
    def _kb(cls, value: str) -> str:
        return kb_id(value)

    _urls = field_validator("sources")(classmethod(lambda cls, value: check_urls(value)))

    @model_validator(mode="after")
    def _real_needs_sources(self) -> Behaviour:
        if not self.synthetic and not self.sources:
            raise ValueError(f"{self.kb}: a behaviour for a Microsoft update cites its sources (or says "
                             "'synthetic: true')")
        return self

    def restart_needed(self, host: WindowsHost) -> bool:
        if self.restart == "always":
            return True
        if self.restart == "never":
            return False
        return self.restart.when.holds(host)

    def offered_by_wsus(self, host: WindowsHost, metadata_as_of: dt.date | None) -> bool:
        """WSUS offers an approved update only where it applies and its offering rules hold."""
        if self.applies_to is not None and not self.applies_to.holds(host):
            return False
        return offered(self.offered_to, self.released, host, metadata_as_of)

    @property
    def where(self) -> str:
        if self._source_file:
            return f"{self._source_file}:{self._source_line}" if self._source_line else self._source_file
        return "<built in>"
