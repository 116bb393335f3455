"""The twin's catalogue: images (starting states) and update behaviours, built in plus ``--twin-catalog DIR``.

Layout of a catalogue directory (the built-in one is ``patchgate/twin`` itself):

    DIR/images/*.yaml     one image per file (patchgate_twin.images)
    DIR/catalog/*.yaml    behaviour files, each ``behaviours: [...]`` (patchgate_twin.behaviours.Behaviour)

Directories are read in order (built-in first); a later image or behaviour with the same name/KB replaces the
earlier one, so a lab can override a built-in behaviour without copying the rest. Within one directory a KB or
image defined twice is an error. Every problem is a ConfigError naming file, field and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchgate.config.yamlfile import load_yaml
from patchgate.errors import ConfigError
from patchgate_twin import specs
from patchgate_twin.behaviours import Behaviour
from patchgate_twin.images import Images
from patchgate_twin.model import WindowsHost

BUILTIN_ROOT = Path(__file__).parent


class BehaviourFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    templates: dict[str, Any] = Field(default_factory=dict, description="YAML anchors to share; ignored")
    behaviours: list[Behaviour] = Field(..., min_length=1)


class UnknownKb(KeyError):
    """The catalogue has no behaviour for a KB: the twin cannot install it."""

    def __init__(self, kb: str, known: list[str]) -> None:
        self.kb = kb
        self.known = known
        super().__init__(kb)

    def __str__(self) -> str:
        return (f"the twin catalogue has no behaviour for {self.kb}, so the twin cannot install it; add one "
                f"with --twin-catalog DIR (DIR/catalog/*.yaml, see docs/twin.md). Known KBs: "
                f"{', '.join(self.known)}")


@dataclass
class Catalog:
    images_: Images
    behaviours_: dict[str, Behaviour] = field(default_factory=dict)
    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, extra_dirs: list[Path] | None = None) -> Catalog:
        extra = [Path(d) for d in (extra_dirs or [])]
        for directory in extra:
            if not directory.is_dir():
                raise ConfigError("--twin-catalog directory not found", file=str(directory))
            if not (directory / "images").is_dir() and not (directory / "catalog").is_dir():
                raise ConfigError("a twin catalogue directory holds images/*.yaml and/or catalog/*.yaml; "
                                  "found neither", file=str(directory))
        images = Images.load([d / "images" for d in extra if (d / "images").is_dir()])
        behaviours: dict[str, Behaviour] = {}
        for directory in [BUILTIN_ROOT, *extra]:
            behaviours.update(load_behaviour_dir(directory / "catalog"))
        catalog = cls(images, behaviours, [BUILTIN_ROOT, *extra])
        catalog._check_expectations()
        return catalog

    # ------------------------------------------------------------ queries

    def behaviour(self, kb: str) -> Behaviour:
        """The behaviour for ``kb``; UnknownKb (a KeyError) with a clear message when there is none."""
        try:
            return self.behaviours_[kb.strip().upper()]
        except KeyError:
            raise UnknownKb(kb.strip().upper(), sorted(self.behaviours_)) from None

    def behaviours(self) -> list[Behaviour]:
        return [self.behaviours_[k] for k in sorted(self.behaviours_)]

    def image(self, name: str) -> WindowsHost:
        """A fresh host for image ``name`` (a deep copy every call); KeyError lists the known images."""
        return self.images_.host(name)

    def images(self) -> list[str]:
        return self.images_.names()

    def image_class(self, name: str) -> str | None:
        return self.images_.image_class(name)

    # ------------------------------------------------------------ checks

    def _check_expectations(self) -> None:
        known = set(self.images())
        for behaviour in self.behaviours_.values():
            for image in behaviour.expect:
                if image not in known:
                    raise ConfigError(f"{behaviour.kb}: 'expect' names unknown image '{image}' (known: "
                                      f"{', '.join(sorted(known))})", file=behaviour._source_file,
                                      field=f"expect.{image}", line=behaviour._source_line)


def load_behaviour_file(path: Path) -> list[Behaviour]:
    doc = load_yaml(path, what="twin behaviour")
    try:
        parsed = BehaviourFile.model_validate(doc.data)
    except ValidationError as exc:
        raise specs.config_error(exc, file=str(path), lines=doc.line_of, data=doc.data) from None
    for index, behaviour in enumerate(parsed.behaviours):
        behaviour._source_file = str(path)
        behaviour._source_line = doc.line_of(("behaviours", index))
    return parsed.behaviours


def load_behaviour_dir(directory: Path) -> dict[str, Behaviour]:
    found: dict[str, Behaviour] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.yaml")):
        for behaviour in load_behaviour_file(path):
            if behaviour.kb in found:
                raise ConfigError(f"{behaviour.kb} is also defined at {found[behaviour.kb].where}",
                                  file=str(path), field="kb", line=behaviour._source_line)
            found[behaviour.kb] = behaviour
    return found


__all__ = ["BUILTIN_ROOT", "Catalog", "UnknownKb", "load_behaviour_dir", "load_behaviour_file"]
