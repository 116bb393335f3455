"""Small lab models for tests of secrets, leases and signing."""

from __future__ import annotations

from typing import Any

from patchgate.config.lab import Lab


def make_lab(secrets: dict[str, Any], *, name: str = "unit", vms: int = 4) -> Lab:
    roles = ["hotpatch-member", "wsus-server", "member", "member"]
    return Lab.model_validate({
        "name": name,
        "hypervisor": {"kind": "twin"},
        "remoting": {"kind": "inprocess"},
        "secrets": secrets,
        "vms": [{"name": f"vm{i}", "role": roles[i % len(roles)], "snapshot": "base", "image": "ws2025"}
                for i in range(vms)],
    })


def vault_lab(address: str, *, name: str = "unit", vms: int = 4, **settings: Any) -> Lab:
    return make_lab({"kind": "vault", "settings": {"address": address, **settings}}, name=name, vms=vms)
