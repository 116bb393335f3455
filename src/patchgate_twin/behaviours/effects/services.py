"""Effects on services: create or patch one (with the events and processes Windows would produce), remove one."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from patchgate_twin import specs
from patchgate_twin.behaviours.effects.base import EffectBase, patch_of
from patchgate_twin.behaviours.windows import patched, scm_event, start_service, start_type_text, stop_service
from patchgate_twin.model import Service, WindowsHost


class UpsertService(EffectBase):
    """``upsert_service: {name: CryptSvc, state: Stopped}``: a new service logs 7045, a changed start type 7040,
    a changed state 7036; a service that stops loses its process, one that starts gets one."""

    ACTION: ClassVar[str] = "upsert_service"
    upsert_service: Annotated[dict[str, Any], patch_of(Service, key="name")]

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        data = self.upsert_service
        existing = host.services.get(data["name"])
        if existing is None:
            _install(host, data, now)
        else:
            _change(host, existing, data, now)


def _install(host: WindowsHost, data: dict[str, Any], now: dt.datetime) -> None:
    svc: Service = specs.build(Service, {"display_name": data["name"], "state": "Stopped", "start_mode": "Manual",
                                        **data})
    host.services[data["name"]] = svc
    start = start_type_text(svc.start_mode)
    scm_event(host, now, 7045, f"A service was installed in the system.\n\nService Name:  {svc.display_name}\n"
              f"Service File Name:  {svc.path_name}\nService Type:  user mode service\nService Start Type:  "
              f"{start}\nService Account:  {svc.start_name}",
              [svc.display_name, svc.path_name, "user mode service", start, svc.start_name])
    if svc.state == "Running":
        svc.process_id = 0
        start_service(host, svc)


def _change(host: WindowsHost, existing: Service, data: dict[str, Any], now: dt.datetime) -> None:
    before_state, before_mode = existing.state, existing.start_mode
    svc: Service = patched(existing, data)
    host.services[data["name"]] = svc
    if svc.start_mode != before_mode:
        old, new = start_type_text(before_mode), start_type_text(svc.start_mode)
        scm_event(host, now, 7040, f"The start type of the {svc.display_name} service was changed from {old} to "
                  f"{new}.", [svc.display_name, old, new, data["name"]])
    if svc.state != before_state:
        if svc.state == "Stopped":
            stop_service(host, svc)
        elif svc.state == "Running":
            if "process_id" not in data:
                svc.process_id = 0
            start_service(host, svc)
        word = {"Running": "running", "Stopped": "stopped"}.get(svc.state, svc.state.lower())
        scm_event(host, now, 7036, f"The {svc.display_name} service entered the {word} state.",
                  [svc.display_name, word])


class RemoveService(EffectBase):
    """``remove_service: Name``: the service and, if no other service shares it, its process."""

    ACTION: ClassVar[str] = "remove_service"
    remove_service: str

    def apply(self, host: WindowsHost, now: dt.datetime) -> None:
        svc = host.services.pop(self.remove_service, None)
        if svc is not None and svc.process_id:
            stop_service(host, svc)
