"""Reading vSphere properties through the PropertyCollector only.

Every read goes through RetrievePropertiesEx / WaitForUpdatesEx with explicit property paths, never through
pyVmomi's lazy attribute accessors: one round trip per question instead of one per attribute, no surprise
deserialisation of properties we do not need, and it works against govmomi's simulator, whose accessor
path fails on unset properties. Each ``Watch`` gets its own PropertyCollector so concurrent waits (one per
VM) never steal each other's updates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from pyVmomi import vim, vmodl

PC = vmodl.query.PropertyCollector


def retrieve(si: vim.ServiceInstance, obj_type: type, objs: Sequence[Any], paths: Sequence[str]
             ) -> dict[str, dict[str, Any]]:
    """Properties of known objects, keyed by moref id; unset properties are absent from the inner dict."""
    if not objs:
        return {}
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=o, skip=False) for o in objs],
        propSet=[PC.PropertySpec(type=obj_type, pathSet=list(paths), all=False)],
    )
    return _collect(si.content.propertyCollector, spec)


def retrieve_one(si: vim.ServiceInstance, obj: Any, paths: Sequence[str]) -> dict[str, Any]:
    return retrieve(si, type(obj), [obj], paths).get(obj._moId, {})


def retrieve_all(si: vim.ServiceInstance, root: Any, obj_type: type, paths: Sequence[str]
                 ) -> list[tuple[Any, dict[str, Any]]]:
    """Every object of a type below ``root`` (recursive), with the given properties."""
    content = si.content
    view = content.viewManager.CreateContainerView(root, [obj_type], True)
    try:
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[
                PC.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)])],
            propSet=[PC.PropertySpec(type=obj_type, pathSet=list(paths), all=False)],
        )
        found: list[tuple[Any, dict[str, Any]]] = []
        result = content.propertyCollector.RetrievePropertiesEx([spec], PC.RetrieveOptions())
        while result is not None:
            for oc in result.objects or []:
                found.append((oc.obj, {p.name: p.val for p in oc.propSet or []}))
            if not result.token:
                break
            result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
        return found
    finally:
        view.Destroy()


def _collect(pc: Any, spec: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    result = pc.RetrievePropertiesEx([spec], PC.RetrieveOptions())
    while result is not None:
        for oc in result.objects or []:
            out[oc.obj._moId] = {p.name: p.val for p in oc.propSet or []}
        if not result.token:
            break
        result = pc.ContinueRetrievePropertiesEx(result.token)
    return out


class Watch:
    """Current values of some properties of one object, advanced by WaitForUpdatesEx.

    ``values`` always holds the latest known value per path (None once removed). ``wait(seconds)`` blocks
    on the server until something changes or the time is up, and returns whether anything changed."""

    def __init__(self, si: vim.ServiceInstance, obj: Any, paths: Iterable[str]) -> None:
        self.obj = obj
        self.paths = list(paths)
        self.values: dict[str, Any] = {p: None for p in self.paths}
        self._pc = si.content.propertyCollector.CreatePropertyCollector()
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
                             propSet=[PC.PropertySpec(type=type(obj), pathSet=self.paths, all=False)])
        self._filter = self._pc.CreateFilter(spec, partialUpdates=False)
        self._version = ""
        self._closed = False
        self._poll(0)  # the initial update carries the current values

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._filter.Destroy()
        except Exception:  # the session may already be gone; the collector dies with it
            pass
        try:
            self._pc.Destroy()
        except Exception:
            pass

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (rounded up to whole seconds, the API's unit) for a change."""
        return self._poll(max(1, math.ceil(seconds)))

    def _poll(self, max_wait: int) -> bool:
        options = PC.WaitOptions(maxWaitSeconds=max_wait)
        update = self._pc.WaitForUpdatesEx(self._version, options)
        if update is None:
            return False
        self._version = update.version
        changed = False
        for fs in update.filterSet or []:
            for ou in fs.objectSet or []:
                for change in ou.changeSet or []:
                    value = None if change.op in ("remove", "indirectRemove") else change.val
                    self._store(change.name, value)
                    changed = True
        return changed

    def _store(self, name: str, value: Any) -> None:
        if name in self.values:
            self.values[name] = value
            return
        # A server may report a parent path ("guest") for a requested child ("guest.ipAddress").
        for path in self.paths:
            if path.startswith(name + "."):
                obj = value
                for part in path[len(name) + 1:].split("."):
                    obj = getattr(obj, part, None) if obj is not None else None
                self.values[path] = obj

