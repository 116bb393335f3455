"""Finding the lab's VMs and snapshots, and refusing VMs someone else is busy with.

A lab names VMs by name (unique within the datacenter, or the whole vCenter) or by inventory path
(``DC/vm/Folder/Name``) when names repeat. Snapshots are named by name or by a path of names through the
snapshot tree (``base/patched``): the last components must match; a leading ``/`` anchors the path at a
root snapshot. Missing or ambiguous always fails with the candidates listed, never a silent first match.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from patchgate.config.lab import VmSpec
from patchgate.errors import HypervisorError
from patchgate.hypervisors.vsphere.collector import retrieve, retrieve_all, retrieve_one

BUSY_STATES = ("queued", "running")


def scope_root(si: vim.ServiceInstance, datacenter: str | None) -> tuple[Any, str]:
    """The folder VMs are searched under, and its description for messages."""
    content = si.content
    if not datacenter:
        return content.rootFolder, "vCenter"
    dcs = retrieve_all(si, content.rootFolder, vim.Datacenter, ["name", "vmFolder"])
    for _dc, props in dcs:
        if props.get("name") == datacenter:
            return props["vmFolder"], f"datacenter '{datacenter}'"
    names = sorted(p.get("name", "?") for _, p in dcs)
    raise HypervisorError(f"datacenter '{datacenter}' not found (datacenters: {', '.join(names) or 'none'})",
                          step="inventory")


def inventory_path(si: vim.ServiceInstance, obj: Any) -> str:
    """'DC0/vm/Folder/Name', as FindByInventoryPath and govc expect it."""
    parts: list[str] = []
    current = obj
    root_id = si.content.rootFolder._moId
    for _ in range(64):  # inventory depth is far below this; guards against a malformed tree
        if current is None or current._moId == root_id:
            break
        props = retrieve_one(si, current, ["name", "parent"])
        parts.append(props.get("name", current._moId))
        current = props.get("parent")
    return "/".join(reversed(parts))


def find_vm(si: vim.ServiceInstance, spec: VmSpec, datacenter: str | None) -> vim.VirtualMachine:
    if spec.inventory_path:
        found = si.content.searchIndex.FindByInventoryPath(spec.inventory_path)
        if found is None:
            raise HypervisorError(f"no VM at inventory path '{spec.inventory_path}'", vm=spec.name,
                                  step="inventory")
        if not isinstance(found, vim.VirtualMachine):
            raise HypervisorError(f"inventory path '{spec.inventory_path}' is a {type(found).__name__}, "
                                  "not a virtual machine", vm=spec.name, step="inventory")
        return found
    root, scope = scope_root(si, datacenter)
    vms = retrieve_all(si, root, vim.VirtualMachine, ["name"])
    matches = [vm for vm, props in vms if props.get("name") == spec.name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = sorted({props.get("name", "") for _, props in vms})
        close = difflib.get_close_matches(spec.name, names, n=5, cutoff=0.5)
        hint = f"; similar names: {', '.join(close)}" if close else f"; {len(names)} VMs visible"
        raise HypervisorError(f"no VM named '{spec.name}' in {scope}{hint}", vm=spec.name, step="inventory")
    paths = sorted(inventory_path(si, vm) for vm in matches)
    raise HypervisorError(f"{len(matches)} VMs are named '{spec.name}' in {scope}: {', '.join(paths)}; "
                          "set 'inventory_path' in the lab file", vm=spec.name, step="inventory")


@dataclass(frozen=True)
class SnapshotMatch:
    ref: vim.vm.Snapshot
    path: str  # full path from the root snapshot, for evidence
    created: str
    power_state: str
    quiesced: bool
    has_memory: bool | None = None


def _walk(nodes: list[Any] | None, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for node in nodes or []:
        path = prefix + (node.name,)
        out.append((path, node))
        out.extend(_walk(node.childSnapshotList, path))
    return out


def snapshot_tree(si: vim.ServiceInstance, vm: vim.VirtualMachine) -> list[tuple[tuple[str, ...], Any]]:
    info = retrieve_one(si, vm, ["snapshot"]).get("snapshot")
    return _walk(info.rootSnapshotList if info else None, ())


def find_snapshot(si: vim.ServiceInstance, vm: vim.VirtualMachine, spec: VmSpec) -> SnapshotMatch:
    wanted = spec.snapshot
    anchored = wanted.startswith("/")
    parts = tuple(p for p in wanted.strip("/").split("/") if p)
    if not parts:
        raise HypervisorError(f"snapshot name '{wanted}' is empty", vm=spec.name, step="snapshot")
    tree = snapshot_tree(si, vm)
    if anchored:
        matches = [(path, node) for path, node in tree if path == parts]
    else:
        matches = [(path, node) for path, node in tree if path[-len(parts):] == parts]
    if len(matches) == 1:
        path, node = matches[0]
        return SnapshotMatch(ref=node.snapshot, path="/".join(path),
                             created=node.createTime.isoformat() if node.createTime else "",
                             power_state=str(node.state), quiesced=bool(node.quiesced))
    if not matches:
        existing = ", ".join("/".join(p) for p, _ in tree) or "none"
        raise HypervisorError(f"snapshot '{wanted}' not found (snapshots: {existing})", vm=spec.name,
                              step="snapshot")
    listed = ", ".join(f"{'/'.join(p)} ({n.snapshot._moId}, {n.createTime:%Y-%m-%d %H:%M})"
                       for p, n in matches)
    raise HypervisorError(f"snapshot '{wanted}' is ambiguous, {len(matches)} match: {listed}; name it by a "
                          "unique path such as 'parent/child', or rename the duplicates", vm=spec.name,
                          step="snapshot")


def ensure_idle(si: vim.ServiceInstance, vm: vim.VirtualMachine, name: str, operation: str) -> None:
    """Refuse a VM with a running/queued task or a pending question: acting would race someone else."""
    props = retrieve_one(si, vm, ["recentTask", "runtime.question"])
    question = props.get("runtime.question")
    if question is not None:
        text = (getattr(question, "text", "") or "").strip().splitlines()
        raise HypervisorError(f"refusing {operation}: the VM is waiting on a question "
                              f"({text[0] if text else 'no text'}); answer it in the vSphere Client first",
                              vm=name, step=operation)
    tasks = list(props.get("recentTask") or [])
    if not tasks:
        return
    infos = retrieve(si, vim.Task, tasks, ["info.state", "info.name", "info.descriptionId"])
    busy = [(tid, p) for tid, p in infos.items() if str(p.get("info.state")) in BUSY_STATES]
    if busy:
        listed = ", ".join(f"{p.get('info.name') or p.get('info.descriptionId') or 'task'} {tid} "
                           f"({p.get('info.state')})" for tid, p in busy)
        raise HypervisorError(f"refusing {operation}: the VM has a task in progress: {listed}; "
                              "wait for it or cancel it in the vSphere Client", vm=name, step=operation)
