"""Lab, candidate and policy files: YAML in, typed models out, ConfigError (exit 4) on anything wrong."""

from __future__ import annotations

from pathlib import Path

from patchgate.config.candidate import Candidate, Classification, PackageFile
from patchgate.config.lab import Lab, VmSpec
from patchgate.config.policy import Allowlists, Policy, Waiver
from patchgate.config.validation import validate_document
from patchgate.config.yamlfile import YamlDocument, load_yaml
from patchgate.errors import ConfigError
from patchgate.evidence.hashing import package_sha256
from patchgate.config.inputs import resolve_candidate, resolve_lab

__all__ = ["Allowlists", "Candidate", "Classification", "Lab", "PackageFile", "Policy", "VmSpec", "Waiver",
           "load_candidate", "load_lab", "resolve_candidate", "resolve_lab"]

def load_lab(path: Path) -> Lab:
    doc = load_yaml(path, what="lab")
    lab = validate_document(Lab, doc)
    _check_waiver_scopes(lab, doc, str(path))
    lab = lab.model_copy(update={"source": path.resolve()})
    if lab.rings is not None:  # checked with the lab, so `validate` refuses a bad rings section too
        from patchgate.config.rings import LabRings

        validate_document(LabRings, doc)
    if lab.calendar_path is not None:
        _check_calendar(lab.calendar_path, doc.line_of(("calendar",)), str(path))
    return lab


def _check_calendar(real: Path, line: int | None, shown: str) -> None:
    """Load the lab's calendar now, so a missing or broken file is bad input (exit 4), not a broken check."""
    from patchgate.calendar.schedule import HotpatchCalendar

    if not real.is_file():
        raise ConfigError(f"calendar file not found (looked at {real})", file=shown, field="calendar", line=line)
    HotpatchCalendar.load(real)


def _check_waiver_scopes(lab: Lab, doc: YamlDocument, shown: str) -> None:
    """A waiver naming a VM or role this lab does not have could never apply: exit 4 on its line."""
    names = [vm.name for vm in lab.vms]
    roles = sorted({vm.role for vm in lab.vms})
    for index, waiver in enumerate(lab.policy.waivers):
        for key, values, known in (("vms", waiver.vms, names), ("roles", waiver.roles, roles)):
            for position, value in enumerate(values):
                if value not in known:
                    what = "VM" if key == "vms" else "role"
                    raise ConfigError(f"no {what} '{value}' in lab '{lab.name}', so the waiver could never apply "
                                      f"(the lab's {key}: {', '.join(known)})", file=shown,
                                      field=f"policy.waivers[{index}].{key}[{position}]",
                                      line=doc.line_of(("policy", "waivers", index, key, position)))


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
    digest = package_sha256(real)
    if digest != package.sha256:
        raise ConfigError(f"package {package.file} has sha256 {digest}, the candidate file says "
                          f"{package.sha256}", file=shown, field=f"packages[{index}].sha256", line=line)


