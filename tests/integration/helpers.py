"""Helpers for end-to-end tests: run the ``patchgate`` command, write lab files, look for leaked secrets."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from support.runs import PATCHGATE, ROOT, clean_env, patchgate  # noqa: F401 - re-exported for the tests


# The four VMs of labs/twin.yaml: the same images, roles and rings, so verdicts are comparable.
TWIN_VMS: list[dict[str, Any]] = [
    {"name": "ws25-hp-01", "role": "hotpatch-member", "snapshot": "baseline-2025-10", "ring": "ring0",
     "image": "ws2025-dc-hotpatch-oct2025"},
    {"name": "ws25-az-01", "role": "hotpatch-member", "snapshot": "baseline-2025-10", "ring": "ring0",
     "image": "ws2025-azure-edition-oct2025"},
    {"name": "ws25-wsus-01", "role": "wsus-server", "snapshot": "baseline-2025-10", "ring": "ring0",
     "image": "ws2025-dc-wsus-oct2025"},
    {"name": "ws25-mbr-01", "role": "member", "snapshot": "baseline-2025-10", "ring": "ring1",
     "image": "ws2025-std-member-oct2025"},
]

PSRP_LOOPBACK = {"kind": "psrp", "settings": {"ssl": False, "auth": "basic", "encryption": "never",
                                               "connect_timeout": 10, "read_timeout": 30,
                                               "operation_timeout": 20}}


def write_lab(path: Path, *, name: str, hypervisor: dict[str, Any], secrets: dict[str, Any],
              remoting: dict[str, Any] | None = None, vms: list[dict[str, Any]] | None = None,
              **extra: Any) -> Path:
    document: dict[str, Any] = {
        "name": name,
        "hypervisor": hypervisor,
        "remoting": remoting or PSRP_LOOPBACK,
        "secrets": secrets,
        "vms": vms or TWIN_VMS,
        "timeouts": {"ready": 120, "install": 600, "reboot": 120, "capture": 60},
        "retries": {"count": 1, "backoff": 0.5},
    }
    document.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def from_example(example: str, path: Path, *, hypervisor_settings: dict[str, Any] | None = None,
                 secrets_settings: dict[str, Any] | None = None, **top: Any) -> Path:
    """A documented example lab under labs/ with the test's server addresses (and other fields) filled in:
    ``hypervisor_settings`` and ``secrets_settings`` update the example's ``settings`` (None deletes a field); ``top`` replaces
    top-level sections. Tests that use it prove the example works as documented."""
    document = yaml.safe_load((ROOT / "labs" / example).read_text(encoding="utf-8"))
    document.update(top)
    for section, updates in (("hypervisor", hypervisor_settings), ("secrets", secrets_settings)):
        settings = document[section].setdefault("settings", {})
        for key, value in (updates or {}).items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def gate(out: Path) -> dict[str, Any]:
    return json.loads((out / "gate.json").read_text(encoding="utf-8"))


def outcomes(out: Path) -> dict[tuple[str, str], str]:
    """(vm, invariant) -> status of every check in a run's gate.json."""
    return {(c["vm"], c["invariant"]): c["status"] for c in gate(out)["checks"]}


def explain(proc: subprocess.CompletedProcess[str], tail: int = 3000) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-tail:]}\n--- stderr\n{proc.stderr[-tail:]}"


# ------------------------------------------------------------------ leaked secrets


@dataclass(frozen=True)
class Leak:
    where: str
    canary: str


def canary_forms(canaries: Iterable[str], users: Iterable[str] = ()) -> dict[str, str]:
    """Each canary and the HTTP Basic token it would take in a header: form -> canary it reveals."""
    forms = {c: c for c in canaries}
    for user in users:
        for canary in list(forms.values()):
            forms[base64.b64encode(f"{user}:{canary}".encode()).decode()] = canary
    return forms


def find_leaks(forms: Mapping[str, str], *, files: Iterable[Path] = (),
               texts: Mapping[str, str] | None = None) -> list[Leak]:
    """Every file (bytes, whatever its type) and text that contains a canary in any form."""
    leaks: list[Leak] = []
    encoded = {form.encode(): canary for form, canary in forms.items()}
    for path in files:
        data = path.read_bytes()
        leaks += [Leak(str(path), canary) for form, canary in encoded.items() if form in data]
    for name, text in (texts or {}).items():
        leaks += [Leak(name, canary) for form, canary in forms.items() if form in text]
    return leaks


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
