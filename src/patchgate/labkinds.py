"""The lab kinds: which code drives a lab file's ``hypervisor.kind``, and which plays its guests, from one table.

pytest-testinfra's ``BACKENDS`` is the model: one table of dotted paths, resolved in one function, so the engine
names no kind's code and imports a kind only when a lab asks for it. The engine's own kinds are in
``BUILTIN_KINDS``; other distributions add theirs under the ``patchgate.lab_kinds`` entry-point group (patchgate's
rehearsal lab, the twin, registers itself that way: see pyproject.toml). A kind is an object with the methods of
:class:`LabKind`; :class:`BaseLabKind` gives the ones a kind does not need.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from patchgate.errors import ConfigError
from patchgate.run.interrupts import import_held

if TYPE_CHECKING:
    from pydantic import BaseModel

    from patchgate.config.lab import Lab
    from patchgate.hypervisors.base import Hypervisor
    from patchgate.remoting.base import Remoting
    from patchgate.secrets.base import SecretsProvider

ENTRY_POINT_GROUP = "patchgate.lab_kinds"
CATALOG_OPTION = "--twin-catalog"  # the documented option whose folders reach the kinds that read catalogues
BUILTIN_KINDS: dict[str, str] = {
    "vsphere": "patchgate.hypervisors.vsphere.kind:KIND",
    "hyperv": "patchgate.hypervisors.hyperv.kind:KIND",
}
PLANNED_KINDS: dict[str, str] = {}


@dataclass
class KindOptions:
    """What the command line adds to a lab file for its kinds (``--twin-catalog`` folders, say)."""

    catalogs: list[Path] = field(default_factory=list)
    inputs_checked: bool = False  # the kind's own input files were checked already (patchgate validate does)
    inject_faults: bool = True  # false for the reaper: faults describe trouble during a run, not cleanup


@dataclass
class LabParts:
    """What a kind builds for a run: the hypervisor, and what it serves itself besides."""

    hypervisor: "Hypervisor"
    secrets: "SecretsProvider"  # the lab's secrets, or the kind's wrapper around them
    remoting: "Remoting | None" = None  # a remoting the kind serves itself (None: the engine builds lab.remoting)
    handle: Any = None  # the kind's own object for the run (its tests and tools read it; the engine does not)
    before_leases: Callable[[Any, list[str]], None] | None = None  # acts on the lease store before they are taken
    remoting_counters: Callable[[str], dict[str, int]] | None = None  # per VM: requests its endpoint served
    changed_vms: Callable[[], dict[str, str]] | None = None  # VMs whose disks differ from their snapshot: why
    before_check: Callable[[str, Any, bool], None] | None = None  # (vm, the run's ledger, in an xdist worker)
    closers: list[Callable[[], None]] = field(default_factory=list)


class LabKind(Protocol):
    """The methods the engine calls on a kind, in the order a run calls them, and what it declares of itself."""

    name: str
    settings_model: "type[BaseModel] | None"  # ``hypervisor.settings`` when it drives the hypervisor (None: none)
    secrets_model: "type[BaseModel] | None"  # the model of ``secrets.settings`` when the kind keeps its own accounts
    remoting_kinds: tuple[str, ...]  # ``remoting.kind`` values the kind serves itself (no network)
    simulates_guests: bool  # its guests are simulated: each VM names an ``image`` and may list ``faults``
    needs_hypervisor_login: bool  # the hypervisor login comes from the lab's secrets
    reads_catalogs: bool  # the catalogue folders (CATALOG_OPTION) mean something to it

    def prepare(self, lab: "Lab", *, seed: int | None, fresh_seed: int | None) -> "Lab":
        """The lab with the run's own settings filled in (the noise seed of a simulated lab, say)."""

    def check_inputs(self, lab: "Lab", options: KindOptions) -> Any:
        """Raise ConfigError for anything of the kind's own inputs that is bad (exit 4 before the lab is touched)."""

    def build(self, lab: "Lab", secrets: "SecretsProvider", options: KindOptions,
              stop: threading.Event) -> LabParts:
        """The run's hypervisor (the kind of ``hypervisor.kind``)."""

    def attach_guests(self, parts: LabParts, lab: "Lab", options: KindOptions, stop: threading.Event) -> LabParts:
        """Play the guests of another kind's VMs (the kind named by ``hypervisor.settings.guests``)."""

    def run_facts(self, lab: "Lab") -> dict[str, Any]:
        """What the run manifest records of this kind's settings."""

    def build_secrets(self, model: Any) -> "SecretsProvider":
        """The accounts of a lab whose ``secrets.kind`` names this kind (it makes its own)."""

    def kept_vm_hint(self, vm: dict[str, Any]) -> str | None:
        """Where a VM left changed (``--keep-on-failure``) can be looked at, when the kind knows better than its
        endpoint (gate.json's ``vms[]`` entry); None: the engine's words."""


class BaseLabKind:
    """The methods a kind may leave out, and what a kind declares when it says nothing."""

    name = "base"
    reads_catalogs = False
    settings_model: "type[BaseModel] | None" = None
    secrets_model: "type[BaseModel] | None" = None
    remoting_kinds: tuple[str, ...] = ()
    simulates_guests = False
    needs_hypervisor_login = True

    def prepare(self, lab: "Lab", *, seed: int | None, fresh_seed: int | None) -> "Lab":
        return lab

    def check_inputs(self, lab: "Lab", options: KindOptions) -> Any:
        return None

    def build(self, lab: "Lab", secrets: "SecretsProvider", options: KindOptions,
              stop: threading.Event) -> LabParts:
        raise ConfigError(f"lab kind '{self.name}' cannot drive a hypervisor", file=_source(lab),
                          field="hypervisor.kind")

    def attach_guests(self, parts: LabParts, lab: "Lab", options: KindOptions, stop: threading.Event) -> LabParts:
        raise ConfigError(f"lab kind '{self.name}' cannot play guests", file=_source(lab),
                          field="hypervisor.settings.guests")

    def run_facts(self, lab: "Lab") -> dict[str, Any]:
        return {}

    def build_secrets(self, model: Any) -> "SecretsProvider":
        raise ConfigError(f"lab kind '{self.name}' keeps no accounts of its own", field="secrets.kind")

    def kept_vm_hint(self, vm: dict[str, Any]) -> str | None:
        return None


@functools.cache
def _registered() -> dict[str, str]:
    table = dict(BUILTIN_KINDS)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(entry.name, entry.value)
    return table


def known_kinds() -> list[str]:
    return sorted(_registered())


@functools.cache
def lab_kind(name: str, *, source: str | None = None) -> LabKind:
    """The kind registered as ``name``: the one function that turns the table's dotted paths into code."""
    if name in PLANNED_KINDS:
        raise ConfigError(f"{PLANNED_KINDS[name]}; use one of: {', '.join(known_kinds())}", file=source,
                          field="hypervisor.kind")
    path = _registered().get(name)
    if path is None:
        raise ConfigError(f"unknown lab kind '{name}'; installed kinds: {', '.join(known_kinds())}", file=source,
                          field="hypervisor.kind")
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(import_held(module_name), attribute)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"lab kind '{name}' is registered as {path}, which cannot be loaded: {exc}",
                          file=source, field="hypervisor.kind") from None


def guest_kind_name(lab: "Lab") -> str | None:
    """The kind that plays the lab's guests when it is not the hypervisor's own (``settings.guests``)."""
    guests = getattr(lab.hypervisor.settings, "guests", None)
    return None if guests in (None, "real") else str(guests)


def kinds_of(lab: "Lab") -> list[LabKind]:
    """The hypervisor's kind, then the guests' kind when another one plays them."""
    source = _source(lab)
    kinds = [lab_kind(lab.hypervisor.kind, source=source)]
    guests = guest_kind_name(lab)
    if guests is not None and guests != lab.hypervisor.kind:
        kinds.append(lab_kind(guests, source=source))
    return kinds


def prepare_lab(lab: "Lab", *, seed: int | None = None, fresh_seed: int | None = None) -> "Lab":
    for kind in kinds_of(lab):
        lab = kind.prepare(lab, seed=seed, fresh_seed=fresh_seed)
    return lab


def check_kind_inputs(lab: "Lab", options: KindOptions) -> list[Any]:
    """Each kind's own checks of its inputs (ConfigError: exit 4); the results (a loaded catalogue, say)."""
    require_catalog_reader(lab, options)
    return [kind.check_inputs(lab, options) for kind in kinds_of(lab)]


def require_catalog_reader(lab: "Lab", options: KindOptions) -> None:
    if options.catalogs and not any(kind.reads_catalogs for kind in kinds_of(lab)):
        raise ConfigError(f"{CATALOG_OPTION} only applies to labs of a kind that reads catalogues (this lab's: "
                          f"{', '.join(kind.name for kind in kinds_of(lab))})", file=_source(lab))


def kind_facts(lab: "Lab") -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for kind in kinds_of(lab):
        facts.update(kind.run_facts(lab))
    return facts


def _source(lab: "Lab") -> str | None:
    return str(lab.source) if lab.source else None
