"""Effects on plain host state: any field by dotted path, the build, reboot flags, WSUS and hotpatch state."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import ValidationError, field_validator

from patchgate_twin import specs
from patchgate_twin.behaviours.effects.base import EffectBase, patch_of
from patchgate_twin.behaviours.paths import path_type, set_path
from patchgate_twin.behaviours.windows import patched
from patchgate_twin.model import HotpatchState, RebootFlags, WindowsHost, WsusState


class SetPaths(EffectBase):
    """``set: {hotpatch.hotpatch_table_size: 0}``: any model field by dotted path; paths and values are checked
    at load time."""

    ACTION: ClassVar[str] = "set"
    set: dict[str, Any]

    @field_validator("set")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path, item in value.items():
            try:
                specs.value_adapter(path_type(path)).validate_python(item)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                raise ValueError(f"'{path}': {first.get('msg')}") from None
        return value

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        for path, item in self.set.items():
            set_path(host, path, item)


class SetBuild(EffectBase):
    """``set_build: {ubr: 6905}``: CurrentBuild.UBR, optionally ``current_build``."""

    ACTION: ClassVar[str] = "set_build"
    set_build: dict[str, Any]

    @field_validator("set_build")
    @classmethod
    def _build(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - {"ubr", "current_build"}
        if unknown or not isinstance(value.get("ubr"), int):
            raise ValueError("set_build takes 'ubr' (an integer) and optionally 'current_build'")
        return value

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        host.ubr = int(self.set_build["ubr"])
        if "current_build" in self.set_build:
            host.current_build = str(self.set_build["current_build"])


class _StatePatch(EffectBase):
    """A patch of one of the host's state objects: the host attribute ``TARGET``, by the action's mapping."""

    TARGET: ClassVar[str]

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        setattr(host, self.TARGET, patched(getattr(host, self.TARGET), getattr(self, self.ACTION)))


class SetRebootFlags(_StatePatch):
    """``set_reboot_flags: {cbs_reboot_pending: true}``: patch the reboot-pending state."""

    ACTION: ClassVar[str] = "set_reboot_flags"
    TARGET: ClassVar[str] = "reboot"
    set_reboot_flags: Annotated[dict[str, Any], patch_of(RebootFlags)]


class AddPendingFileRenames(EffectBase):
    """``add_pending_file_renames: [...]``: entries appended to PendingFileRenameOperations."""

    ACTION: ClassVar[str] = "add_pending_file_renames"
    add_pending_file_renames: list[str]

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        host.reboot.pending_file_rename_operations.extend(self.add_pending_file_renames)


class PatchWsus(_StatePatch):
    """``wsus: {app_pool_state: Stopped, sync_outcome: Failed}``: WSUS state, including what the next sync does."""

    ACTION: ClassVar[str] = "wsus"
    TARGET: ClassVar[str] = "wsus"
    wsus: Annotated[dict[str, Any], patch_of(WsusState)]


class PatchHotpatch(_StatePatch):
    """``hotpatch: {license_state: Unlicensed}``: enrollment, VBS, Arc agent and licensing state."""

    ACTION: ClassVar[str] = "hotpatch"
    TARGET: ClassVar[str] = "hotpatch"
    hotpatch: Annotated[dict[str, Any], patch_of(HotpatchState)]
