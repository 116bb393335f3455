"""Operation scripts the lifecycle runs on a VM besides probes and the install (e.g. a WSUS sync)."""

from __future__ import annotations

from importlib import resources

from patchgate.remoting.base import Script


def action_script(name: str, **parameters: object) -> Script:
    body = resources.files(__package__).joinpath(f"{name}.ps1").read_text(encoding="utf-8")
    return Script(name=name, body=body, parameters=dict(parameters))


def action_hashes() -> dict[str, str]:
    import hashlib

    folder = resources.files(__package__)
    return {f"actions/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".ps1")}
