"""Effects: one model per action, each with its own ``apply(host, now)``.

An effect in YAML is a mapping with exactly one action key (``upsert_service: {...}``) plus optional ``when``,
``after`` and ``note`` (docs/twin.md "Effects"). ``Effect`` picks the action's model from the key present; a
mapping with no action or several is an error that lists the actions.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Discriminator, Tag, TypeAdapter, create_model

from patchgate_twin.behaviours.effects.base import EffectBase
from patchgate_twin.behaviours.effects.events import AddEvent, EventSpec
from patchgate_twin.behaviours.effects.firewall import (
    RemoveConnectionProfile,
    RemoveFirewallRule,
    SetFirewallProfile,
    UpsertConnectionProfile,
    UpsertFirewallRule,
)
from patchgate_twin.behaviours.effects.hotfixes import AddHotfix, RemoveHotfix
from patchgate_twin.behaviours.effects.network import AddListeningPort, PortRef, PortSpec, RemoveListeningPort
from patchgate_twin.behaviours.effects.processes import AddProcess, ProcessRef, ProcessSpec, RemoveProcess
from patchgate_twin.behaviours.effects.services import RemoveService, UpsertService
from patchgate_twin.behaviours.effects.state import (
    AddPendingFileRenames,
    PatchHotpatch,
    PatchWsus,
    SetBuild,
    SetPaths,
    SetRebootFlags,
)

EFFECT_MODELS: tuple[type[EffectBase], ...] = (
    SetPaths, SetBuild, AddHotfix, RemoveHotfix, UpsertService, RemoveService, SetFirewallProfile,
    UpsertFirewallRule, RemoveFirewallRule, UpsertConnectionProfile, RemoveConnectionProfile, AddListeningPort,
    RemoveListeningPort, AddProcess, RemoveProcess, AddEvent, SetRebootFlags, AddPendingFileRenames, PatchWsus,
    PatchHotpatch,
)
ACTIONS = tuple(model.ACTION for model in EFFECT_MODELS)
_BY_ACTION = {model.ACTION: model for model in EFFECT_MODELS}


def _actions_given(value: dict[str, Any]) -> list[str]:
    return [a for a in ACTIONS if value.get(a) is not None]


def _one_action(value: Any) -> Any:
    """An effect is a mapping with exactly one action; one with an unknown key goes on, so pydantic names the key
    (most often a misspelt action)."""
    if isinstance(value, EffectBase):
        return value
    if not isinstance(value, dict):  # pydantic reports a ValueError at the effect's place
        raise ValueError(f"an effect is a mapping with exactly one action (one of {', '.join(ACTIONS)})")  # noqa: TRY004
    given = _actions_given(value)
    if len(given) != 1 and set(value) <= {*ACTIONS, *EffectBase.model_fields}:
        raise ValueError(f"an effect needs exactly one action (one of {', '.join(ACTIONS)}); got "
                         f"{', '.join(given) or 'none'}")
    return value


WithoutOneAction = create_model(
    "WithoutOneAction", __base__=EffectBase, __doc__="An effect with an unknown key and no single action, parsed "
    "only for pydantic to name the key.", **{action: (Any, None) for action in ACTIONS})


def _tag(value: Any) -> str:
    """The model for ``value``, by the one action key it has (tags are model names, never YAML keys, so error
    locations keep only the keys the author wrote)."""
    if isinstance(value, EffectBase):
        return type(value).__name__
    given = _actions_given(value)
    return _BY_ACTION[given[0]].__name__ if len(given) == 1 else WithoutOneAction.__name__


_TAGGED = tuple(Annotated[model, Tag(model.__name__)] for model in (*EFFECT_MODELS, WithoutOneAction))
Effect = Annotated[Union[_TAGGED],  # type: ignore[valid-type]  # noqa: UP007 - a union built from the table
                   Discriminator(_tag), BeforeValidator(_one_action)]
"""Any effect, as written in a behaviour's ``effects`` list."""

_ADAPTER: TypeAdapter[EffectBase] = TypeAdapter(Effect)


def parse_effect(data: Any) -> EffectBase:
    """One effect from its YAML mapping (pydantic's ValidationError when it is not a valid one)."""
    return _ADAPTER.validate_python(data)


__all__ = [
    "ACTIONS", "EFFECT_MODELS", "AddEvent", "AddHotfix", "AddListeningPort", "AddPendingFileRenames", "AddProcess",
    "Effect", "EffectBase", "EventSpec", "PatchHotpatch", "PatchWsus", "PortRef", "PortSpec", "ProcessRef",
    "ProcessSpec", "RemoveConnectionProfile", "RemoveFirewallRule", "RemoveHotfix", "RemoveListeningPort",
    "RemoveProcess", "RemoveService", "SetBuild", "SetFirewallProfile", "SetPaths", "SetRebootFlags",
    "UpsertConnectionProfile", "UpsertFirewallRule", "UpsertService", "WithoutOneAction", "parse_effect",
]
