"""VM leases: ``build_lease_manager(lab)`` picks Vault KV leases when the lab sets
``secrets.settings.leases_path``, else file locks on this machine."""

from __future__ import annotations

from pathlib import Path

from patchgate.config.lab import Lab
from patchgate.leases.base import Holder, Lease, LeaseInfo, LeaseManager
from patchgate.leases.local import LocalLeaseManager, default_state_dir

__all__ = ["Holder", "Lease", "LeaseInfo", "LeaseManager", "LocalLeaseManager", "build_lease_manager",
           "default_state_dir", "leases_command", "render_leases"]


def build_lease_manager(lab: Lab, *, session: object | None = None,
                        state_dir: Path | None = None) -> LeaseManager:
    """Vault leases when the lab has a Vault ``leases_path``; local file locks otherwise.

    ``session`` may be the secrets provider's VaultSession, so one login serves both.
    """
    secrets = lab.secrets
    if secrets.kind == "vault" and secrets.settings.leases_path:
        from patchgate.leases.vault import VaultLeaseManager

        return VaultLeaseManager(lab.name, secrets.settings, session=session)  # type: ignore[arg-type]
    ttl = secrets.settings.lease_ttl if secrets.kind == "vault" else None
    return LocalLeaseManager(lab.name, state_dir=state_dir, **({"ttl": ttl} if ttl else {}))


def render_leases(leases: list[LeaseInfo], *, lab: str, kind: str) -> str:
    """A plain-text table (rich, no colour) of leases, for the terminal and for CI logs."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"VM leases of lab {lab} ({kind})", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("VM", "State", "Run", "Host", "PID", "Acquired (UTC)", "Expires (UTC)"):
        table.add_column(column)
    for info in leases:
        table.add_row(info.vm, info.state, info.run_id, info.host, str(info.pid),
                      info.acquired.strftime("%Y-%m-%d %H:%M:%S"),
                      info.expires.strftime("%Y-%m-%d %H:%M:%S") if info.expires else "-")
    console = Console(width=140, no_color=True, color_system=None, record=True, file=_Null())
    if leases:
        console.print(table)
    else:
        console.print(f"No VM leases held in lab {lab} ({kind}).")
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def leases_command(lab: Lab) -> str:
    """What ``patchgate leases --lab LAB`` prints."""
    manager = build_lease_manager(lab)
    try:
        return render_leases(manager.list_leases(), lab=lab.name, kind=manager.kind)
    finally:
        manager.close()


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass
