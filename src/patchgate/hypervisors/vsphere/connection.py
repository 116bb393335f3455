"""One verified vSphere session: TLS checked before any credential leaves the process.

pyVmomi 9.1 falls back to an *unverified* TLS context when it is given none, and its own thumbprint pinning
only runs after a CA failure (and then relaxes the shared context). So patchgate builds the SSL context
itself and always passes it: CA validation (system store or ``ca_bundle``), and/or a pinned SHA-256
fingerprint checked on *every* TLS handshake by the socket class. ``cert_validation: false`` is the only
way to turn checks off, and the gate reads ``cert_validation`` to say so in the verdict.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from patchgate.hypervisors.vsphere.settings import VsphereSettings
from patchgate.errors import HypervisorError
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

log = logging.getLogger("patchgate.hypervisors.vsphere")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as vSphere shows it: upper-case hex pairs joined by colons."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _normalise(thumbprint: str) -> str:
    return thumbprint.replace(":", "").lower()


class ThumbprintMismatch(ssl.SSLError):
    """The server presented a certificate other than the pinned one."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"certificate fingerprint mismatch: expected {expected}, server presented {actual}")


class _PinnedSocket(ssl.SSLSocket):
    """Checks the peer certificate's SHA-256 after every handshake; subclassed per pin."""

    pinned: str = ""

    def do_handshake(self, block: bool = False) -> None:  # type: ignore[override]
        super().do_handshake(block)
        der = self.getpeercert(binary_form=True) or b""
        if hashlib.sha256(der).hexdigest() != self.pinned:
            raise ThumbprintMismatch(_colon(self.pinned), fingerprint(der))


def _colon(hexed: str) -> str:
    up = hexed.upper()
    return ":".join(up[i:i + 2] for i in range(0, len(up), 2))


@dataclass(frozen=True)
class TlsPolicy:
    """What the context checks, in words for error messages."""

    context: ssl.SSLContext | None  # None for plain http
    verify_ca: bool
    pinned: str | None  # normalised hex
    ca_source: str


def build_tls(settings: VsphereSettings) -> TlsPolicy:
    """The SSL context for this lab: verifying unless the lab explicitly says ``cert_validation: false``."""
    if urlsplit(settings.url).scheme == "http":
        return TlsPolicy(None, False, None, "none (plain http)")
    if not settings.cert_validation:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return TlsPolicy(ctx, False, None, "disabled by cert_validation: false")
    pinned = _normalise(settings.thumbprint) if settings.thumbprint else None
    if settings.ca_bundle is not None:
        bundle = Path(settings.ca_bundle)
        if not bundle.is_file():
            raise HypervisorError(f"ca_bundle {bundle} does not exist or is not a file", step="connect")
        ctx = ssl.create_default_context(cafile=str(bundle))
        ca_source, verify_ca = f"CA bundle {bundle}", True
    elif pinned:
        # A pinned fingerprint alone trusts exactly one certificate (the usual self-signed vCenter case).
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ca_source, verify_ca = "pinned fingerprint only", False
    else:
        ctx = ssl.create_default_context()
        ca_source, verify_ca = "system CA store", True
    if pinned:
        ctx.sslsocket_class = type("PinnedSocket", (_PinnedSocket,), {"pinned": pinned})
    return TlsPolicy(ctx, verify_ca, pinned, ca_source)


@dataclass(frozen=True)
class Endpoint:
    url: str
    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Endpoint:
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    port = parts.port or (443 if scheme == "https" else 80)
    return Endpoint(url=url, scheme=scheme, host=parts.hostname or "", port=port, path=parts.path or "/sdk")


def probe_tls(endpoint: Endpoint, tls: TlsPolicy, timeout: float = 15.0) -> str | None:
    """One handshake before login, so a TLS problem is reported as exactly that (CA or fingerprint).

    Returns the server certificate's fingerprint (for the run's evidence)."""
    if tls.context is None:
        return None
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw:
            with tls.context.wrap_socket(raw, server_hostname=endpoint.host) as conn:
                der = conn.getpeercert(binary_form=True) or b""
                return fingerprint(der)
    except ThumbprintMismatch as exc:
        raise HypervisorError(
            f"TLS check failed for {endpoint.url}: pinned thumbprint mismatch: expected {exc.expected}, "
            f"server presented {exc.actual}. If the certificate was renewed on purpose, update 'thumbprint' "
            "in the lab file", step="connect") from None
    except ssl.SSLCertVerificationError as exc:
        raise HypervisorError(
            f"TLS check failed for {endpoint.url}: certificate not trusted by {tls.ca_source} "
            f"({exc.verify_message or exc.reason}). Set 'ca_bundle' to the vCenter CA (download it from "
            f"https://{endpoint.host}/certs/download.zip) or pin 'thumbprint'", step="connect") from None
    except ssl.SSLError as exc:
        raise HypervisorError(f"TLS handshake with {endpoint.url} failed: {exc}", step="connect") from None
    except OSError as exc:
        raise HypervisorError(f"cannot reach {endpoint.url}: {exc.strerror or exc}", step="connect") from None


def open_session(settings: VsphereSettings,
                 credentials: Credentials) -> tuple[vim.ServiceInstance, str | None]:
    """Log in once; returns the service instance and the server certificate fingerprint."""
    endpoint = parse_url(settings.url)
    redactor.register(credentials.password.get_secret_value())  # the secret stays wrapped: no plain local
    tls = build_tls(settings)
    if not settings.cert_validation:
        log.warning("vSphere %s: certificate validation is disabled by the lab file (cert_validation: false)",
                    endpoint.url)
    server_fp = probe_tls(endpoint, tls)
    try:
        si = SmartConnect(protocol=endpoint.scheme, host=endpoint.host, port=endpoint.port,
                          user=credentials.username, pwd=credentials.password.get_secret_value(),
                          path=endpoint.path,
                          sslContext=tls.context, disableSslCertValidation=False,
                          httpConnectionTimeout=60)
    except vim.fault.InvalidLogin:
        raise HypervisorError(f"vCenter {endpoint.url} refused the login of user '{credentials.username}' "
                              "(invalid user name or password)", step="connect") from None
    except vim.fault.NoPermission as exc:
        raise HypervisorError(f"user '{credentials.username}' has no permission to log in to {endpoint.url}: "
                              f"{exc.msg}", step="connect") from None
    except ThumbprintMismatch as exc:  # the certificate changed between probe and login
        raise HypervisorError(f"TLS check failed for {endpoint.url}: pinned thumbprint mismatch: expected "
                              f"{exc.expected}, server presented {exc.actual}", step="connect") from None
    except ssl.SSLError as exc:
        raise HypervisorError(f"TLS failure talking to {endpoint.url}: {exc}", step="connect") from None
    except vmodl.MethodFault as exc:
        raise HypervisorError(f"login to {endpoint.url} failed: {type(exc).__name__}: "
                              f"{redactor.redact(exc.msg or '')}", step="connect") from None
    except OSError as exc:
        raise HypervisorError(f"cannot reach {endpoint.url}: {exc.strerror or exc}", step="connect") from None
    return si, server_fp


def close_session(si: vim.ServiceInstance | None) -> None:
    """Log out; a session already gone is not an error worth reporting."""
    if si is None:
        return
    try:
        Disconnect(si)
    except Exception as exc:  # logout failures must not mask the run's real outcome
        log.debug("vSphere logout failed: %s", exc)
