"""YAML loading that remembers where each key sits, so errors can say file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from patchgate.errors import ConfigError

Location = tuple[str | int, ...]


# libyaml's parser when PyYAML has it (about ten times faster on the twin catalogue; its nodes carry the same
# line marks), else the pure-Python one.
_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """A SafeLoader that records the line of every mapping key and sequence item."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.lines: dict[Location, int] = {}


def _walk(loader: _LineLoader, node: yaml.Node, path: Location) -> None:
    loader.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            loader.lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(loader, value_node, path + (key,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            loader.lines[path + (index,)] = item.start_mark.line + 1
            _walk(loader, item, path + (index,))


class YamlDocument:
    """A parsed YAML document plus the line of each location in it."""

    def __init__(self, path: Path, data: Any, lines: dict[Location, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, location: Location) -> int | None:
        """The line of ``location`` or of its nearest ancestor that has one."""
        loc = tuple(location)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def load_yaml(path: Path, *, what: str) -> YamlDocument:
    """Read one YAML mapping; any I/O or syntax problem becomes a ConfigError naming the file."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", file=shown) from None
    except IsADirectoryError:
        raise ConfigError(f"{what} path is a directory, expected a YAML file", file=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file: {exc.__class__.__name__}", file=shown) from None
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{what} file is empty", file=shown)
        _walk(loader, node, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", file=shown, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc.__class__.__name__}", file=shown) from None
    except RecursionError:
        raise ConfigError("YAML nesting too deep", file=shown) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file must be a YAML mapping at the top level, got {type(data).__name__}",
                          file=shown, line=1)
    return YamlDocument(path, data, loader.lines)
