"""Provision OpenBao for a lab the way docs/vault.md tells an operator to: KV v2 credentials, a leases
prefix, an ed25519 transit key, one least-privilege policy, and a token and an AppRole bound to it.

Every secret value is a *canary*: a random string the tests then look for in every output.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from support.openbao import OpenBao, make_approle

KV_MOUNT = "secret"


def canary(kind: str) -> str:
    return f"canary{kind}{secrets.token_hex(10)}"


@dataclass
class VaultLab:
    address: str
    prefix: str                      # credentials live under secret/<prefix>/...
    leases_path: str
    transit_mount: str
    key: str
    other_key: str                   # a second ed25519 key: signatures must not verify against it
    policy: str
    token: str                       # a token with only the lab's policy
    role_id: str
    secret_id: str
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> {username, password}

    @property
    def canaries(self) -> list[str]:
        """Every secret value a run can see: passwords, the token, the AppRole secret_id."""
        return [c["password"] for c in self.credentials.values()] + [self.token, self.secret_id]

    @property
    def users(self) -> list[str]:
        return sorted({c["username"] for c in self.credentials.values()})

    def env(self, auth: str = "token") -> dict[str, str]:
        if auth == "token":
            return {"VAULT_TOKEN": self.token}
        return {"VAULT_ROLE_ID": self.role_id, "VAULT_SECRET_ID": self.secret_id}

    def secrets_section(self, *, auth: str = "token", leases: bool = True, signing: bool = True,
                        hypervisor: bool = False) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "address": self.address,
            "auth": {"method": auth},
            "kv_mount": KV_MOUNT,
            "remoting_path": f"{self.prefix}/windows/default",
            "role_paths": {"wsus-server": f"{self.prefix}/windows/wsus"},
            "vm_paths": {"ws25-mbr-01": f"{self.prefix}/windows/ws25-mbr-01"},
            "transit_mount": self.transit_mount,
            "timeout": 10,
        }
        if hypervisor:
            settings["hypervisor_path"] = f"{self.prefix}/vcenter"
        if leases:
            settings["leases_path"] = self.leases_path
            settings["lease_ttl"] = 60
        if signing:
            settings["signing_key"] = self.key
        return {"kind": "vault", "settings": settings}


def policy_hcl(prefix: str, leases_path: str, transit: str, key: str) -> str:
    """The policy of docs/vault.md for this lab's paths."""
    return f'''
path "{KV_MOUNT}/data/{prefix}/*" {{ capabilities = ["read"] }}
path "{KV_MOUNT}/data/{leases_path}/*" {{ capabilities = ["create", "read", "update"] }}
path "{KV_MOUNT}/metadata/{leases_path}/*" {{ capabilities = ["read", "list"] }}
path "{KV_MOUNT}/metadata/{leases_path}" {{ capabilities = ["list"] }}
path "{transit}/sign/{key}" {{ capabilities = ["update"] }}
path "{transit}/verify/{key}" {{ capabilities = ["update"] }}
path "{transit}/keys/{key}" {{ capabilities = ["read"] }}
'''


def provision(server: OpenBao, *, hypervisor: tuple[str, str] | None = None) -> VaultLab:
    """``hypervisor`` (username, password) is stored at ``<prefix>/vcenter`` when given."""
    root = server.client()
    tag = uuid.uuid4().hex[:8]
    prefix, leases_path, transit = f"patchgate/it-{tag}", f"patchgate-leases-{tag}", f"transit-{tag}"
    credentials = {
        f"{prefix}/windows/default": {"username": "CONTOSO\\svc-canary", "password": canary("pw")},
        f"{prefix}/windows/wsus": {"username": "CONTOSO\\svc-wsus-canary", "password": canary("wsus")},
        f"{prefix}/windows/ws25-mbr-01": {"username": "mbr-local-admin", "password": canary("mbr")},
    }
    if hypervisor is not None:
        credentials[f"{prefix}/vcenter"] = {"username": hypervisor[0], "password": hypervisor[1]}
    for path, secret in credentials.items():
        root.secrets.kv.v2.create_or_update_secret(path=path, secret=secret, mount_point=KV_MOUNT)
    root.sys.enable_secrets_engine("transit", path=transit)
    for key in ("patchgate-verdicts", "other-key"):
        root.secrets.transit.create_key(key, key_type="ed25519", mount_point=transit)
    policy = f"patchgate-it-{tag}"
    hcl = policy_hcl(prefix, leases_path, transit, "patchgate-verdicts")
    role_id, secret_id = make_approle(root, policy, hcl)
    token = root.auth.token.create(policies=[policy], ttl="2h", renewable=True)["auth"]["client_token"]
    return VaultLab(address=server.address, prefix=prefix, leases_path=leases_path, transit_mount=transit,
                    key="patchgate-verdicts", other_key="other-key", policy=policy, token=token,
                    role_id=role_id, secret_id=secret_id, credentials=credentials)
