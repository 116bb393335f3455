"""Twin images: named starting states of a Windows Server 2025 host, written as YAML.

An image is what a twin VM's snapshot holds before the candidate goes on. Images inherit (``extends: other``) so
each one states only what makes it different: a WSUS server is the hotpatch member plus the role's services, rules
and ports. The format is documented in docs/twin.md; in short:

* ``name`` (required), ``extends`` (optional), ``description``, ``class`` (a label such as ``hotpatch-member``
  used by behaviour ``expect`` tables), ``host`` (fields of ``patchgate_twin.model.WindowsHost``).
* ``services``, ``firewall_profiles`` and ``firewall_rules`` are mappings keyed by Name; the key becomes the
  object's ``name``. A child image patches an inherited entry field by field and removes it with ``null``.
* Any other mapping merges key by key; a list replaces the parent's list, or extends it when the key ends in
  ``+`` (``hotfixes+: [...]``); ``null`` resets a field to the model's default.

Every image is validated twice: each file on its own (field names and types, with file:line), then the merged
result as a complete host. ``Images.host(name)`` returns a fresh deep copy every time.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchgate.config.yamlfile import YamlDocument, load_yaml
from patchgate.errors import ConfigError
from patchgate_twin import specs
from patchgate_twin.model import WindowsHost

BUILTIN_DIR = Path(__file__).with_name("images")
KEYED = ("services", "firewall_profiles", "firewall_rules")
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,80}$"


class ImageFile(BaseModel):
    """The top level of one image file; ``host`` is checked against the model separately."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(..., pattern=NAME_PATTERN)
    extends: str | list[str] | None = None
    abstract: bool = Field(False, description="a building block for other images; not offered to labs")
    description: str = ""
    image_class: str | None = Field(None, alias="class")
    host: dict[str, Any] = Field(default_factory=dict)


@dataclass
class ImageDef:
    name: str
    extends: list[str]
    abstract: bool
    description: str
    image_class: str | None
    host: dict[str, Any]
    doc: YamlDocument

    @property
    def file(self) -> str:
        return str(self.doc.path)


def _raise(exc: ValidationError, doc: YamlDocument, data: Any, prefix: tuple[str | int, ...] = ()) -> None:
    raise specs.config_error(exc, file=str(doc.path), lines=doc.line_of, data=data, prefix=prefix) from None


def _strip_plus(data: Any) -> Any:
    """``key+`` (append to the inherited list) validates like ``key``."""
    if isinstance(data, dict):
        return {(k[:-1] if isinstance(k, str) and k.endswith("+") else k): _strip_plus(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_strip_plus(v) for v in data]
    return data


def parse_image_file(path: Path) -> ImageDef:
    """Read and check one image file on its own (field names and value types)."""
    doc = load_yaml(path, what="twin image")
    try:
        top = ImageFile.model_validate(doc.data)
    except ValidationError as exc:
        _raise(exc, doc, doc.data)
    stripped = _strip_plus(top.host)
    try:
        specs.partial(WindowsHost).model_validate(stripped)
    except ValidationError as exc:
        _raise(exc, doc, stripped, ("host",))
    parents = [top.extends] if isinstance(top.extends, str) else list(top.extends or [])
    for index, parent in enumerate(parents):
        if not re.fullmatch(NAME_PATTERN, parent):
            loc = ("extends",) if isinstance(top.extends, str) else ("extends", index)
            raise ConfigError(f"'{parent}' is not an image name", file=str(path), field=specs.field_name(loc),
                              line=doc.line_of(loc))
    return ImageDef(top.name, parents, top.abstract, top.description, top.image_class, top.host, doc)


def merge(parent: Any, child: Any) -> Any:
    """Child over parent: mappings merge, lists replace (``key+`` appends), ``null`` removes."""
    if not isinstance(parent, dict) or not isinstance(child, dict):
        return copy.deepcopy(child)
    out = copy.deepcopy(parent)
    for key, value in child.items():
        if isinstance(key, str) and key.endswith("+"):
            base = key[:-1]
            out[base] = list(out.get(base) or []) + copy.deepcopy(list(value or []))
        elif value is None:
            out.pop(key, None)
        elif key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _with_names(host: dict[str, Any]) -> dict[str, Any]:
    data = dict(host)
    for key in KEYED:
        if isinstance(data.get(key), dict):
            data[key] = {name: {**(entry or {}), "name": name} for name, entry in data[key].items()}
    data.setdefault("computer_name", "WS2025")
    return data


class Images:
    """All images known to one run: the built-in ones, then each extra directory (later ones override)."""

    def __init__(self, defs: dict[str, ImageDef]) -> None:
        self._defs = defs
        self._built: dict[str, WindowsHost] = {}
        self._building = threading.RLock()  # VMs of one image revert together: build it once, not once each

    @classmethod
    def load(cls, extra_dirs: list[Path] | None = None) -> Images:
        defs: dict[str, ImageDef] = {}
        extra: set[str] = set()
        for directory in [BUILTIN_DIR, *(extra_dirs or [])]:
            if not directory.is_dir():
                raise ConfigError("twin image directory not found", file=str(directory))
            seen: dict[str, str] = {}
            for path in sorted(directory.glob("*.yaml")):
                image = parse_image_file(path)
                if image.name in seen:
                    raise ConfigError(f"image '{image.name}' is also defined in {seen[image.name]}",
                                      file=str(path), field="name", line=image.doc.line_of(("name",)))
                seen[image.name] = str(path)
                defs[image.name] = image
                if directory != BUILTIN_DIR:
                    extra.add(image.name)
        images = cls(defs)
        for name, image in defs.items():
            # The user's own images fail at load time, not when a VM first reverts. The built-in ones are
            # checked by patchgate's tests and built on first use, so a run pays only for the images it uses.
            if not image.abstract and (name in extra or any(p.name in extra for p in images._chain(name))):
                images._build(name)
        return images

    def names(self) -> list[str]:
        """Images a lab may name (abstract building blocks left out)."""
        return sorted(n for n, d in self._defs.items() if not d.abstract)

    def definition(self, name: str) -> ImageDef:
        return self._defs[name]

    def image_class(self, name: str) -> str | None:
        """The nearest ``class`` label along the extends chain."""
        for image in self._chain(name)[::-1]:
            if image.image_class:
                return image.image_class
        return None

    def host(self, name: str) -> WindowsHost:
        """A fresh, independent host for image ``name``; KeyError names the known images."""
        if name not in self._defs or self._defs[name].abstract:
            raise KeyError(f"unknown twin image '{name}' (known: {', '.join(self.names())})")
        return self._build(name).clone()

    def _chain(self, name: str, trail: tuple[str, ...] = ()) -> list[ImageDef]:
        """Root first: each parent's chain in ``extends`` order, then the image itself (first occurrence wins)."""
        image = self._defs[name]
        if name in trail:
            names = " -> ".join(trail + (name,))
            raise ConfigError(f"image inheritance loops: {names}", file=image.file, field="extends",
                              line=image.doc.line_of(("extends",)))
        chain: list[ImageDef] = []
        for parent in image.extends:
            if parent not in self._defs:
                raise ConfigError(f"image '{image.name}' extends unknown image '{parent}' (known: "
                                  f"{', '.join(sorted(self._defs))})", file=image.file, field="extends",
                                  line=image.doc.line_of(("extends",)))
            for item in self._chain(parent, trail + (name,)):
                if all(item is not c for c in chain):
                    chain.append(item)
        chain.append(image)
        return chain

    def _build(self, name: str) -> WindowsHost:
        if name in self._built:
            return self._built[name]
        with self._building:
            if name not in self._built:
                self._built[name] = self._build_uncached(name)
            return self._built[name]

    def _build_uncached(self, name: str) -> WindowsHost:
        chain = self._chain(name)
        data: dict[str, Any] = {}
        for image in chain:
            data = merge(data, image.host)
        data = _with_names(data)
        try:
            spec = specs.full(WindowsHost).model_validate(data)
        except ValidationError as exc:
            loc = ("host",) + specs.data_location(tuple(exc.errors()[0].get("loc", ())), data)
            owner = next((i for i in chain[::-1] if loc in i.doc.lines), chain[-1])
            raise specs.config_error(exc, file=owner.file, lines=owner.doc.line_of, data=data, prefix=("host",),
                                     what=f"image '{name}': ") from None
        host: WindowsHost = specs.build(WindowsHost, specs.dump(spec))
        problems = consistency_problems(host)
        if problems:
            leaf = chain[-1]
            raise ConfigError(f"image '{name}' is inconsistent: " + "; ".join(problems), file=leaf.file)
        return host


def consistency_problems(host: WindowsHost) -> list[str]:
    """Cross-object checks a real host satisfies: running services and listeners have live processes."""
    problems: list[str] = []
    pids = {p.process_id: p for p in host.processes}
    for service in host.services.values():
        if service.state == "Running" and service.process_id not in pids:
            problems.append(f"service {service.name} is Running with ProcessId {service.process_id}, "
                            "which is not in processes")
        if service.state == "Stopped" and service.process_id:
            problems.append(f"service {service.name} is Stopped but has ProcessId {service.process_id}")
    for port in host.listening_ports:
        proc = pids.get(port.owning_process)
        if proc is None:
            problems.append(f"{port.protocol} port {port.local_port} is owned by PID {port.owning_process}, "
                            "which is not in processes")
        elif proc.name.lower() != port.process_name.lower():
            problems.append(f"{port.protocol} port {port.local_port}: process_name {port.process_name} but PID "
                            f"{port.owning_process} is {proc.name}")
    for proc in host.processes:
        if proc.parent_process_id and proc.parent_process_id not in pids:
            problems.append(f"process {proc.name} ({proc.process_id}) has parent {proc.parent_process_id}, "
                            "which is not in processes")
    if len(pids) != len(host.processes):
        problems.append("two processes share a ProcessId")
    return problems


def load_image(name: str, extra_dirs: list[Path] | None = None) -> WindowsHost:
    """Convenience for callers that need one host: a fresh copy of image ``name``."""
    return Images.load(extra_dirs).host(name)


__all__ = ["BUILTIN_DIR", "ImageDef", "Images", "consistency_problems", "load_image", "merge"]
