"""One authenticated hvac client per run, shared by credentials, leases and signing.

Why a session object instead of bare ``hvac.Client``: logins (AppRole, JWT) create tokens we own and
must revoke; long runs outlive token TTLs, so a renewer thread keeps renewable tokens alive; and every
hvac/requests failure must become a clear ``LabError`` naming the address, path and key — never a
value. TLS checking is on unless the lab turns it off, and that choice is exposed as
``cert_validation`` so the gate can record it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import NoReturn

import hvac
import hvac.exceptions as hv
import requests

from patchgate.config.lab import VaultSecretsSettings
from patchgate.environ_race import settled_session
from patchgate.errors import LabError, SecretsError
from patchgate.secrets.redact import redactor, safe_str

log = logging.getLogger(__name__)

DEFAULT_AUTH_MOUNTS = {"approle": "approle", "jwt": "jwt"}
MIN_RENEW_INTERVAL = 5.0


def _env_or_file(var: str, file: Path | None, what: str) -> str:
    """A login secret from a file (preferred: not visible in the process environment) or a variable."""
    if file is not None:
        try:
            value = Path(file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretsError(f"cannot read the Vault {what} file {file}: {exc.strerror}") from None
        if not value:
            raise SecretsError(f"the Vault {what} file {file} is empty")
        return value
    value = os.environ.get(var, "").strip()
    if not value:
        raise SecretsError(f"the Vault {what} is not set: export {var}")
    return value


class VaultSession:
    """An authenticated hvac client plus token renewal and error translation.

    ``error_class`` picks the LabError subclass raised by :meth:`fail` (SecretsError for credentials,
    LeaseError for leases), so each caller's failures land in the right family.
    """

    def __init__(self, settings: VaultSecretsSettings, *, token: str | None = None,
                 renew: bool = True) -> None:
        self.settings = settings
        self.address = (settings.address or os.environ.get("VAULT_ADDR", "")).rstrip("/")
        if not self.address:
            raise SecretsError("no Vault address: set secrets.settings.address in the lab file or export "
                               "VAULT_ADDR")
        self.namespace = settings.namespace or os.environ.get("VAULT_NAMESPACE") or None
        self.cert_validation: bool = settings.cert_validation
        verify: bool | str = settings.cert_validation
        if settings.cert_validation and settings.ca_bundle is not None:
            bundle = Path(settings.ca_bundle).expanduser()
            if not bundle.is_file():
                raise SecretsError(f"Vault CA bundle {bundle} does not exist (secrets.settings.ca_bundle)")
            verify = str(bundle)
        if not settings.cert_validation:
            log.warning("TLS certificate validation for Vault at %s is OFF "
                        "(secrets.settings.cert_validation: false); the verdict records this", self.address)
        self.auth_method = settings.auth.method
        self._owns_token = False
        self._closed = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.token_renewable = False
        self.token_ttl = 0
        # the environment's proxy and CA settings read now, not on every request (patchgate.environ_race)
        http, verify = settled_session(self.address, verify)
        self.client = hvac.Client(url=self.address, namespace=self.namespace, verify=verify,
                                  timeout=settings.timeout, session=http)
        try:
            self._login(token)
            self._inspect_token()
        except BaseException:
            self._close_adapter()
            raise
        if renew:
            self._start_renewer()

    # ------------------------------------------------------------ auth

    @property
    def auth_mount(self) -> str:
        return self.settings.auth.mount or DEFAULT_AUTH_MOUNTS.get(self.auth_method, self.auth_method)

    def _login(self, token: str | None) -> None:
        auth = self.settings.auth
        if self.auth_method == "token":
            value = token or os.environ.get(auth.token_env, "").strip()
            if not value:
                token_file = Path("~/.vault-token").expanduser()
                value = token_file.read_text().strip() if token_file.is_file() else ""
            if not value:
                raise SecretsError(f"no Vault token: export {auth.token_env} (auth method 'token' on "
                                   f"{self.address})")
            redactor.register(value)
            self.client.token = value
            return
        where = f"auth/{self.auth_mount}"
        if self.auth_method == "approle":
            role_id = _env_or_file(auth.role_id_env, auth.role_id_file, "AppRole role_id")
            secret_id = _env_or_file(auth.secret_id_env, auth.secret_id_file, "AppRole secret_id")
            redactor.register(secret_id)
            try:
                reply = self.client.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                                       mount_point=self.auth_mount)
            except Exception as exc:  # noqa: BLE001 - translated below
                self.fail(exc, path=f"{where}/login", action="log in with AppRole at", error=SecretsError)
        elif self.auth_method == "jwt":
            if not auth.role:
                raise SecretsError("Vault JWT login needs a role: set secrets.settings.auth.role")
            jwt = _env_or_file(auth.jwt_env, auth.jwt_file, "JWT")
            redactor.register(jwt)
            try:
                reply = self.client.auth.jwt.jwt_login(role=auth.role, jwt=jwt, path=self.auth_mount)
            except Exception as exc:  # noqa: BLE001 - translated below
                self.fail(exc, path=f"{where}/login", action=f"log in with JWT role '{auth.role}' at",
                          error=SecretsError)
        else:  # pragma: no cover - the lab model's Literal forbids it
            raise SecretsError(f"unknown Vault auth method {self.auth_method!r}")
        client_token = reply["auth"]["client_token"]
        redactor.register(client_token)
        self.client.token = client_token
        self._owns_token = True
        log.info("logged in to Vault at %s with %s (mount %s)", self.address, self.auth_method,
                 self.auth_mount)

    def _inspect_token(self) -> None:
        try:
            data = self.client.auth.token.lookup_self()["data"]
        except Exception as exc:  # noqa: BLE001 - translated below
            self.fail(exc, path="auth/token/lookup-self", action="check the token at", error=SecretsError)
        self.token_renewable = bool(data.get("renewable"))
        self.token_ttl = int(data.get("ttl") or 0)
        self.token_policies = list(data.get("policies") or [])

    # ------------------------------------------------------------ renewal

    def _start_renewer(self) -> None:
        if not (self.token_renewable and self.token_ttl > 0):
            if self.token_ttl > 0:
                log.warning("Vault token is not renewable and expires in %ss; a longer run will fail with "
                            "permission denied", self.token_ttl)
            return
        self._renewer = threading.Thread(target=self._renew_loop, name="vault-token-renewer", daemon=True)
        self._renewer.start()

    def renew_interval(self) -> float:
        return max(MIN_RENEW_INTERVAL, self.token_ttl / 2)

    def renew_token(self) -> int:
        """Renew now; returns the new TTL in seconds."""
        try:
            reply = self.client.auth.token.renew_self()
        except Exception as exc:  # noqa: BLE001 - translated below
            self.fail(exc, path="auth/token/renew-self", action="renew the token at", error=SecretsError)
        self.token_ttl = int(reply["auth"].get("lease_duration") or 0)
        return self.token_ttl

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_interval()):
            try:
                ttl = self.renew_token()
                log.debug("renewed Vault token, ttl %ss", ttl)
            except SecretsError as exc:
                log.warning("Vault token renewal failed (will retry): %s", safe_str(exc))
                self.token_ttl = max(int(MIN_RENEW_INTERVAL * 2), self.token_ttl // 2)

    # ------------------------------------------------------------ errors

    def fail(self, exc: BaseException, *, path: str, action: str = "read", key: str | None = None,
             error: type[LabError] = SecretsError, vm: str | None = None) -> NoReturn:
        """Raise ``error`` for an hvac/requests failure: what, where, which path and key; never a value."""
        raise translate(exc, address=self.address, path=path, action=action, key=key, error=error,
                        vm=vm) from None

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop renewal and revoke a token we created by logging in; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self._owns_token:
            try:
                self.client.auth.token.revoke_self()
            except Exception as exc:  # noqa: BLE001 - revocation is best effort; the TTL still applies
                log.warning("could not revoke the Vault token at %s: %s", self.address, safe_str(exc))
        self._close_adapter()

    def _close_adapter(self) -> None:
        try:
            self.client.adapter.close()
        except Exception:  # noqa: BLE001 - closing a pool cannot fail meaningfully
            pass

    def __enter__(self) -> "VaultSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def translate(exc: BaseException, *, address: str, path: str, action: str = "read", key: str | None = None,
              error: type[LabError] = SecretsError, vm: str | None = None) -> LabError:
    """Map hvac and requests exceptions to one readable LabError. Values never appear in the text."""
    target = f"'{path}'" + (f" (key '{key}')" if key else "")
    if isinstance(exc, requests.exceptions.SSLError):
        detail = (f"TLS verification failed for Vault at {address} while trying to {action} {target}; "
                  "set secrets.settings.ca_bundle to the CA that signed the server certificate")
    elif isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        detail = (f"Vault at {address} is unreachable ({type(exc).__name__}) while trying to {action} "
                  f"{target}; check the address and that the server is running")
    elif isinstance(exc, hv.VaultDown):
        detail = f"Vault at {address} is sealed (or in maintenance): cannot {action} {target}; unseal it"
    elif isinstance(exc, hv.VaultNotInitialized):
        detail = f"Vault at {address} is not initialized: cannot {action} {target}"
    elif isinstance(exc, hv.Forbidden):
        detail = (f"permission denied by Vault at {address} trying to {action} {target}: the token's "
                  f"policies do not allow it (or the token expired)")
    elif isinstance(exc, hv.Unauthorized):
        detail = f"Vault at {address} refused our credentials trying to {action} {target}"
    elif isinstance(exc, hv.InvalidPath):
        detail = f"no secret at {target} in Vault at {address} (cannot {action} it)"
    elif isinstance(exc, hv.InvalidRequest):
        reasons = "; ".join(getattr(exc, "errors", None) or [str(exc)])
        detail = f"Vault at {address} rejected the request to {action} {target}: {reasons}"
    elif isinstance(exc, hv.VaultError):
        reasons = "; ".join(getattr(exc, "errors", None) or [str(exc)])
        detail = f"Vault at {address} failed to {action} {target} ({type(exc).__name__}): {reasons}"
    else:
        detail = f"unexpected {type(exc).__name__} trying to {action} {target} at {address}: {exc}"
    return error(redactor.redact(detail), vm=vm)
