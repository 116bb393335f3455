"""Rings: the order in which an approved update reaches production, for ``patchgate promote`` (docs/rings.md).

A ring is a set of computer target groups on a production WSUS server; a ring may require another ring to have
been promoted at least its soak time earlier. The rings live in a lab file's ``rings:`` section or in a file of
their own; a production server is reached like the lab's VMs are: a remoting block and a secrets block (env or
Vault only: credentials never live in the file).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from patchgate.config.install import GROUP_FORBIDDEN
from patchgate.config.lab import NAME_RE, EnvSecrets, Lab, PsrpRemoting, SshRemoting, VaultSecrets
from patchgate.config.located import FieldProblem
from patchgate.config.strict import Strict
from patchgate.errors import ConfigError

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(\d+[wdhms])+$")

ServerRemoting = Annotated[Annotated[PsrpRemoting, Tag("psrp")] | Annotated[SshRemoting, Tag("ssh")],
                           Discriminator("kind")]
ServerSecrets = Annotated[Annotated[EnvSecrets, Tag("env")] | Annotated[VaultSecrets, Tag("vault")],
                          Discriminator("kind")]


def parse_duration(value: Any, *, what: str = "duration") -> dt.timedelta:
    """``7d``, ``36h``, ``1d12h``, ``90m``, ``0``: weeks, days, hours, minutes, seconds; a bare number is seconds."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return dt.timedelta(seconds=value)
    text = str(value).strip().lower()
    if text.isdigit():
        return dt.timedelta(seconds=int(text))
    if not _DURATION.match(text):
        raise ValueError(f"{what} must be like 7d, 36h, 1d12h, 90m or 0 (w, d, h, m, s), got {value!r}")
    return dt.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([wdhms])", text)))


def parse_moment(value: Any) -> dt.datetime:
    """An absolute time with its UTC offset (``2026-12-10T18:00:00Z``); a time without one is ambiguous."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an absolute deadline needs its UTC offset, e.g. 2026-12-10T18:00:00Z")
    return moment.astimezone(dt.UTC)


class ProductionServer(Strict):
    """A production WSUS server and how patchgate reaches it (the same blocks as a lab's remoting and secrets)."""

    address: str = Field(..., min_length=1, max_length=255, description="host name or address to connect to")
    hostname: str | None = Field(None, description="the name its certificate / SPN carries, when not the address")
    remoting: ServerRemoting | None = Field(None, description="default: the lab's remoting (rings in a lab file)")
    secrets: ServerSecrets | None = Field(None, description="env or vault; default: the lab's (rings in a lab file)")


class Ring(Strict):
    name: str = Field(..., pattern=NAME_RE)
    server: str = Field(..., description="a key of `servers`")
    groups: list[str] = Field(..., min_length=1, description="computer target groups the KB is approved for")
    deadline: Any = Field(None, description="install deadline: a duration after the promotion (3d) or an absolute "
                          "UTC time (2026-12-10T18:00:00Z)")
    after: str | None = Field(None, description="the ring that must have been promoted before this one")
    soak: Any = Field("0", validate_default=True, description="how long `after` must have been promoted before "
                      "this ring (2d, 36h, 0)")

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            bad = sorted(set(group) & GROUP_FORBIDDEN)
            if not group or len(group) > 255 or bad:
                raise ValueError(f"'{group}' is not a WSUS computer target group name (1-255 characters, none of "
                                 f"{' '.join(sorted(GROUP_FORBIDDEN))})")
        return value

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: Any) -> dt.timedelta | dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime) or (isinstance(value, str) and "-" in value):
            return parse_moment(value)
        return parse_duration(value, what="deadline")

    @field_validator("soak")
    @classmethod
    def _soak(cls, value: Any) -> dt.timedelta:
        return parse_duration(value, what="soak")

    @property
    def soak_time(self) -> dt.timedelta:
        return self.soak  # type: ignore[no-any-return]

    def deadline_at(self, promoted_at: dt.datetime) -> dt.datetime | None:
        """The install deadline of a promotion made at ``promoted_at`` (UTC), or None."""
        if isinstance(self.deadline, dt.timedelta):
            return promoted_at + self.deadline
        return self.deadline  # type: ignore[no-any-return]


class RingsConfig(Strict):
    servers: dict[str, ProductionServer] = Field(..., min_length=1)
    rings: list[Ring] = Field(..., min_length=1, description="in promotion order")
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _references(self) -> "RingsConfig":
        seen: list[str] = []
        for index, ring in enumerate(self.rings):
            if ring.name in seen:
                raise FieldProblem(("rings", index, "name"), f"ring '{ring.name}' is defined twice")
            if ring.server not in self.servers:
                raise FieldProblem(("rings", index, "server"), f"no server '{ring.server}' in `servers` (known: "
                                   f"{', '.join(self.servers)})")
            if ring.after is not None and ring.after not in seen:
                raise FieldProblem(("rings", index, "after"), f"ring '{ring.after}' is not defined before ring "
                                   f"'{ring.name}' (rings are listed in promotion order)")
            seen.append(ring.name)
        return self

    def ring(self, name: str) -> Ring:
        for ring in self.rings:
            if ring.name == name:
                return ring
        raise ConfigError(f"no ring '{name}' (rings: {', '.join(r.name for r in self.rings)})",
                          file=str(self.source) if self.source else None, field="rings")

    def with_lab_defaults(self, lab: Lab) -> "RingsConfig":
        """Servers without remoting/secrets take the lab's, when the lab's are the engine's own kinds."""
        servers = {}
        for name, server in self.servers.items():
            update: dict[str, Any] = {}
            if server.remoting is None and isinstance(lab.remoting, (PsrpRemoting, SshRemoting)):
                update["remoting"] = lab.remoting
            if server.secrets is None and isinstance(lab.secrets, (EnvSecrets, VaultSecrets)):
                update["secrets"] = lab.secrets
            servers[name] = server.model_copy(update=update)
        return self.model_copy(update={"servers": servers})

    def check_complete(self) -> None:
        """Every server says how it is reached (a file of its own has no lab to take defaults from)."""
        shown = str(self.source) if self.source else None
        for name, server in self.servers.items():
            for key in ("remoting", "secrets"):
                if getattr(server, key) is None:
                    raise ConfigError(f"server '{name}' needs `{key}` (env or vault for secrets; credentials "
                                      "never live in the file)" if key == "secrets" else
                                      f"server '{name}' needs `{key}` (psrp or ssh)", file=shown,
                                      field=f"servers.{name}.{key}")


class LabRings(Strict):
    """A lab document seen only for its ``rings:`` section (field names and lines stay the lab file's)."""

    model_config = Strict.model_config | {"extra": "ignore"}
    rings: RingsConfig


def load_rings(path: Path, lab: Lab | None = None) -> RingsConfig:
    """A rings file, or the ``rings:`` section of a lab file (then servers default to the lab's blocks)."""
    from patchgate.config.validation import validate_document
    from patchgate.config.yamlfile import load_yaml

    doc = load_yaml(path, what="rings")
    if "rings" in doc.data and isinstance(doc.data["rings"], dict) and "hypervisor" in doc.data:
        rings = validate_document(LabRings, doc).rings.model_copy(update={"source": path.resolve()})
        if lab is not None:
            rings = rings.with_lab_defaults(lab)
    else:
        rings = validate_document(RingsConfig, doc).model_copy(update={"source": path.resolve()})
    rings.check_complete()
    return rings
