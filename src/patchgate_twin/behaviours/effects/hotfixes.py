"""Effects on Get-HotFix: an installed KB added (installed_on = the install's date) or removed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import field_validator

from patchgate_twin import specs
from patchgate.model.kb import kb_id
from patchgate_twin.behaviours.effects.base import EffectBase, patch_of
from patchgate_twin.model import HotFix, WindowsHost


class AddHotfix(EffectBase):
    """``add_hotfix: {hotfix_id: KB5070893, description: Security Update}``; replaces an entry for the same KB."""

    ACTION: ClassVar[str] = "add_hotfix"
    add_hotfix: Annotated[dict[str, Any], patch_of(HotFix, key="hotfix_id")]

    @field_validator("add_hotfix")
    @classmethod
    def _kb(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {**value, "hotfix_id": kb_id(value["hotfix_id"])}

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        kb = self.add_hotfix["hotfix_id"]
        host.hotfixes = [h for h in host.hotfixes if h.hotfix_id.upper() != kb]
        host.hotfixes.append(specs.build(HotFix, {"installed_on": now.date(), **self.add_hotfix}))


class RemoveHotfix(EffectBase):
    """``remove_hotfix: KB5068966``."""

    ACTION: ClassVar[str] = "remove_hotfix"
    remove_hotfix: str

    @field_validator("remove_hotfix")
    @classmethod
    def _kb(cls, value: str) -> str:
        return kb_id(value)

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        host.hotfixes = [h for h in host.hotfixes if h.hotfix_id.upper() != self.remove_hotfix]
