"""The fields every effect carries, and the check of a patch of one model object."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import AfterValidator

from patchgate_twin import specs
from patchgate_twin.behaviours.common import Strict
from patchgate_twin.behaviours.conditions import Condition
from patchgate_twin.model import WindowsHost


class EffectBase(Strict):
    """One change to the host: exactly one action key (the field named ``ACTION``), plus ``when``, ``after`` and
    ``note``."""

    ACTION: ClassVar[str]

    when: Condition | None = None
    after: Literal["install", "reboot"] = "install"
    note: str = ""

    @property
    def action(self) -> str:
        return self.ACTION

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        """Change ``host`` at model time ``now`` (``when`` was decided by the caller); KeyError or IndexError
        when the effect names something this host lacks."""
        raise NotImplementedError


def patch_of(cls: type, *, key: str | None = None) -> AfterValidator:
    """Checks a mapping as a patch of dataclass ``cls`` (keeping only the keys written), needing ``key`` if given:
    ``upsert_service: Annotated[dict[str, Any], patch_of(Service, key="name")]``."""

    def check(value: dict[str, Any]) -> dict[str, Any]:
        data = specs.dump(specs.partial(cls).model_validate(value))
        if key and not data.get(key):
            raise ValueError(f"needs '{key}'")
        return data

    return AfterValidator(check)
