"""Lab, candidate and policy files: YAML in, typed models out, ConfigError (exit 4) on anything wrong."""

from __future__ import annotations

import re
from pathlib import Path

from patchgate.config.candidate import Candidate, Classification, PackageFile
from patchgate.config.lab import Lab, VmSpec
from patchgate.config.policy import Allowlists, Policy, Waiver
from patchgate.config.validation import validate_document
from patchgate.config.yamlfile import load_yaml
from patchgate.errors import ConfigError
from patchgate.hashing import sha256_file

__all__ = ["Allowlists", "Candidate", "Classification", "Lab", "PackageFile", "Policy", "VmSpec", "Waiver",
           "load_candidate", "load_lab", "resolve_candidate", "resolve_lab"]

def load_lab(path: Path) -> Lab:
    doc = load_yaml(path, what="lab")
    lab = validate_document(Lab, doc)
    return lab.model_copy(update={"source": path.resolve()})


def load_candidate(path: Path, *, check_packages: bool = True) -> Candidate:
    doc = load_yaml(path, what="candidate")
    candidate = validate_document(Candidate, doc).model_copy(update={"source": path.resolve()})
    if check_packages:
        for index, package in enumerate(candidate.packages):
            _check_package(candidate, index, package, doc.line_of(("packages", index, "file")), str(path))
    return candidate


def _check_package(candidate: Candidate, index: int, package: PackageFile, line: int | None, shown: str) -> None:
    real = candidate.package_path(package)
    field = f"packages[{index}].file"
    if not real.is_file():
        raise ConfigError(f"package file {package.file} not found (looked at {real})", file=shown, field=field,
                          line=line)
    digest = sha256_file(real)
    if digest != package.sha256:
        raise ConfigError(f"package {package.file} has sha256 {digest}, the candidate file says "
                          f"{package.sha256}", file=shown, field=f"packages[{index}].sha256", line=line)


def _search_roots() -> list[Path]:
    """The working directory, then the patchgate checkout (where labs/ and candidates/ ship)."""
    from patchgate.paths import project_root

    root = project_root()
    return [Path.cwd()] + ([root] if root is not None and root != Path.cwd() else [])


def resolve_lab(value: str) -> Path:
    """Accept a path or a bare lab name (``twin`` -> ``labs/twin.yaml``)."""
    return _resolve(value, folder="labs", what="lab")


def resolve_candidate(value: str) -> Path:
    """Accept a path or a KB id (``KB5070881`` -> ``candidates/KB5070881.yaml``)."""
    if re.fullmatch(r"(?i)(kb)?\d{6,8}", value):
        value = value.upper() if value.upper().startswith("KB") else f"KB{value}"
    return _resolve(value, folder="candidates", what="candidate")


def _resolve(value: str, *, folder: str, what: str) -> Path:
    direct = Path(value)
    if direct.suffix in (".yaml", ".yml") or "/" in value or direct.is_file():
        if not direct.is_file():
            raise ConfigError(f"{what} file not found", file=value)
        return direct
    for root in _search_roots():
        for suffix in (".yaml", ".yml"):
            candidate = root / folder / f"{value}{suffix}"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for root in _search_roots() for p in (root / folder).glob("*.y*ml")})
    hint = f"; known: {', '.join(known)}" if known else ""
    raise ConfigError(f"unknown {what} '{value}' (no {folder}/{value}.yaml){hint}")
