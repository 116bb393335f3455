"""PowerShell remoting over WSMan with pypsrp: one long-lived RunspacePool per VM, one pipeline per script.

Why a pool per VM and not ``Client.execute_ps``: every ``execute_ps`` opens and closes a new pool (several
round trips) and logs the whole script at INFO. A capture is one composed script, so one ``run`` is one
Command + its Receives on a pool opened once. File copies reuse the same pool.

Long-lived pools die (WinRM service restart, shell idle timeout, a reset connection, a read timeout that
leaves the pool unusable). The session reconnects ONCE and re-runs the script; a second failure raises
RemotingError (or LabTimeout) naming the host. Scripts must therefore be safe to run twice: probes only
read, and ``Add-WindowsPackage`` of an already installed package is a no-op.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import requests
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import (
    AuthenticationError,
    InvalidPSRPOperation,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import NAMESPACES, WSMan, WSManAction

from patchgate.config.lab import PsrpSettings
from patchgate.environ_race import raised_reading_environ
from patchgate.errors import ConfigError, LabError, LabTimeout, RemotingAuthError, RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.base import Script, ScriptResult, SessionIdentity, pypsrp_copy_script
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

__all__ = ["PsrpSession"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ERROR_WSMAN_OPERATION_TIMEDOUT = 0x80338029
ERROR_WSMAN_SHELL_NOT_FOUND = 0x8033805B
# pypsrp's Client.copy subtracts this for the PSRP fragment/message headers around each input chunk.
_COPY_HEADER_BYTES = 82


class _WSMan(WSMan):
    """pypsrp's WSMan with Receive retries off: the session decides about retrying (reconnect once),
    and pypsrp's five silent read-timeout retries would multiply a hung host's wait by six."""

    def receive(self, resource_uri: str, resource: Any, option_set: Any = None, selector_set: Any = None,
                timeout: int | None = None) -> Any:
        res = self.invoke(WSManAction.RECEIVE, resource_uri, resource, option_set, selector_set, timeout,
                          retries_on_read_timeout=0)
        return res.find("s:Body", namespaces=NAMESPACES)


def _wire(value: Any) -> Any:
    """Parameter values pypsrp can serialise: Paths as text, tuples/sets as lists, mappings recursively."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class PsrpSession(SessionIdentity):
    """One VM's RunspacePool. Not for concurrent use from several threads (calls are serialised)."""

    def __init__(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials,
                 settings: PsrpSettings) -> None:
        super().__init__(vm_name, endpoint, credentials,
                         port=endpoint.port or settings.port or (5986 if settings.ssl else 5985),
                         staging_dir=settings.staging_dir,
                         cert_validation=bool(settings.ssl and settings.cert_validation))
        self.settings = settings
        self._lock = threading.RLock()
        self._wsman: _WSMan | None = None
        self._pool: RunspacePool | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PsrpSession(vm={self.vm!r}, host={self.host!r}, port={self.port})"

    # ------------------------------------------------------------------ connection

    def _build_wsman(self) -> _WSMan:
        s = self.settings
        verify: bool | str = False
        if s.ssl and s.cert_validation:
            verify = str(s.ca_bundle) if s.ca_bundle else True
        kwargs: dict[str, Any] = {}
        if s.auth in ("negotiate", "kerberos", "ntlm") and self.host != self.address:
            kwargs["negotiate_hostname_override"] = self.host  # the SPN names the host, we dial its address
        if s.auth == "certificate":
            raise ConfigError("auth 'certificate' needs a client certificate, which this lab file cannot "
                              "name; use basic, ntlm, negotiate, kerberos or credssp",
                              field="remoting.settings.auth")
        try:
            return _WSMan(
                self.address,
                port=self.port,
                username=self._credentials.username,
                password=self._credentials.password.get_secret_value(),
                ssl=s.ssl,
                path=s.path,
                auth=s.auth,
                cert_validation=verify,
                connection_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                operation_timeout=max(1, math.ceil(s.operation_timeout)),
                encryption=s.encryption,
                no_proxy=True,  # a lab VM is never reached through the proxy PyPI traffic might use
                reconnection_retries=0,
                **kwargs,
            )
        except ValueError as exc:
            raise ConfigError(f"{exc} (host {self.host})", field="remoting.settings") from None

    def connect(self) -> None:
        """Open the pool; bounded by connect_timeout (TCP) and read_timeout (each answer). The open is sent again
        once if it met the environment race (patchgate.environ_race: nothing of it was sent)."""
        with self._lock:
            self._closed = False
            for attempt in (1, 2):
                wsman = self._build_wsman()
                pool = RunspacePool(wsman)
                try:
                    pool.open()
                    break
                except Exception as exc:
                    wsman.close()
                    if attempt == 1 and raised_reading_environ(exc):
                        continue
                    raise self._error(exc, "opening a runspace pool") from None
            # the proxies are off (no_proxy) and the CA settings were read when pypsrp built its requests
            # session: from now on it need not walk os.environ on every request (patchgate.environ_race)
            if wsman.transport.session is not None:
                wsman.transport.session.trust_env = False
            self._wsman, self._pool = wsman, pool
            log.info("psrp: runspace pool open on %s:%s for %s", self.host, self.port, self.vm)

    def _discard(self) -> None:
        """Forget a pool that is already dead; sending Delete to it could hang for read_timeout."""
        if self._wsman is not None:
            try:
                self._wsman.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
        self._wsman, self._pool = None, None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, wsman = self._pool, self._wsman
            self._wsman, self._pool = None, None
            if pool is not None:
                try:
                    pool.close()
                except Exception as exc:  # noqa: BLE001 - closing must not mask the real outcome
                    log.warning("psrp: closing the pool on %s failed: %s", self.host,
                                redactor.redact(type(exc).__name__))
            if wsman is not None:
                wsman.close()

    def __enter__(self) -> "PsrpSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ errors

    @staticmethod
    def _retryable(exc: BaseException) -> bool:
        """The pool is gone or unusable, or the request met the environment race: worth one reconnect."""
        if raised_reading_environ(exc):
            return True
        if isinstance(exc, AuthenticationError):
            return False
        if isinstance(exc, requests.exceptions.SSLError):
            return False
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            requests.exceptions.ChunkedEncodingError, InvalidPSRPOperation)):
            return True
        if isinstance(exc, WSManFaultError):
            return exc.code == ERROR_WSMAN_SHELL_NOT_FOUND
        if isinstance(exc, WinRMTransportError):
            return exc.code in (502, 503, 504)
        return False

    def _error(self, exc: BaseException, what: str, *, reconnected: bool = False) -> LabError:
        if isinstance(exc, LabError):
            return exc
        where = f"{self.host}:{self.port}"
        suffix = " (after one reconnect)" if reconnected else ""
        if isinstance(exc, AuthenticationError):
            return RemotingAuthError(
                f"{where} refused the credentials of user '{self._credentials.username}' "
                f"(auth {self.settings.auth}) while {what}", vm=self.vm, host=self.host)
        if isinstance(exc, requests.exceptions.SSLError):
            return RemotingError(
                f"TLS with {where} failed while {what}: {redactor.redact(str(exc))}. Certificate validation is "
                f"on; point remoting.settings.ca_bundle at the CA that issued the WinRM listener's certificate",
                vm=self.vm, host=self.host)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return LabTimeout(f"no TCP connection to {where} within {self.settings.connect_timeout:g}s "
                              f"(connect_timeout) while {what}{suffix}", vm=self.vm, host=self.host)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return LabTimeout(f"{where} did not answer within {self.settings.read_timeout:g}s (read_timeout) "
                              f"while {what}{suffix}", vm=self.vm, host=self.host)
        if isinstance(exc, WSManFaultError):
            detail = redactor.redact(str(exc.reason or exc.message))
            return RemotingError(f"WSMan fault 0x{int(exc.code or 0):08X} from {where} while {what}{suffix}: "
                                 f"{detail}", vm=self.vm, host=self.host)
        if isinstance(exc, ImportError):
            return RemotingError(f"auth {self.settings.auth} is not available: {exc}", vm=self.vm, host=self.host)
        kind = type(exc).__name__
        return RemotingError(f"{kind} talking to {where} while {what}{suffix}: {redactor.redact(str(exc))}",
                             vm=self.vm, host=self.host)

    def _with_reconnect(self, what: str, attempt: Callable[[], T]) -> T:
        with self._lock:
            if self._closed:
                raise RemotingError(f"the session to {self.host} is closed", vm=self.vm, host=self.host)
            try:
                if self._pool is None:
                    self.connect()
                return attempt()
            except LabError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                if not self._retryable(exc):
                    raise self._error(exc, what) from None
                log.warning("psrp: %s on %s:%s while %s; reconnecting once", type(exc).__name__, self.host,
                            self.port, what)
            self._discard()
            self.reconnects += 1
            try:
                self.connect()
                return attempt()
            except LabError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._discard()
                raise self._error(exc, what, reconnected=True) from None

    # ------------------------------------------------------------------ pipelines

    def _drive(self, ps: PowerShell, name: str, timeout: float | None,
               input_data: Iterator[Any] | None = None) -> None:
        """Start ``ps`` and poll it; each Receive long-polls at most operation_timeout (less near the deadline)."""
        assert self._wsman is not None and self._pool is not None
        deadline = time.monotonic() + timeout if timeout else None
        default_op = self._wsman.operation_timeout
        self.pipelines += 1
        try:
            ps.begin_invoke(input=input_data)
            while ps.state == PSInvocationState.RUNNING:
                op = self.settings.operation_timeout
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._stop(ps)
                        raise LabTimeout(f"script '{name}' ran past its {timeout:g}s limit on {self.host}",
                                         vm=self.vm, host=self.host)
                    op = min(op, remaining)
                self._wsman.operation_timeout = max(1, math.ceil(op))
                ps.poll_invoke()
        finally:
            self._wsman.operation_timeout = default_op
            if self._pool is not None:
                self._pool.pipelines.pop(ps.id, None)

    def _stop(self, ps: PowerShell) -> None:
        try:
            ps.stop()
        except Exception:  # noqa: BLE001 - best effort; the timeout is what gets reported
            pass

    def run(self, script: Script, *, timeout: float | None = None) -> ScriptResult:
        def attempt() -> ScriptResult:
            assert self._pool is not None
            ps = PowerShell(self._pool)
            ps.add_script(script.body)
            ps_parameters = {name: _wire(value) for name, value in script.parameters.items()}
            for name, value in ps_parameters.items():
                ps.add_parameter(name, value)
            self._drive(ps, script.name, timeout)
            errors = [redactor.redact(_text(e)) for e in ps.streams.error]
            if ps.state == PSInvocationState.FAILED and not errors:
                errors = [f"the pipeline for '{script.name}' failed without an error record"]
            return ScriptResult(name=script.name, output=[_text(o) for o in ps.output], errors=errors)

        return self._with_reconnect(f"running '{script.name}'", attempt)

    def copy_file(self, source: Path, destination: str, *, timeout: float | None = None) -> str:
        """pypsrp's copy script fed in chunks as pipeline input, on this session's pool.

        The remote side checks the SHA-1 of what arrived against what was sent (transport integrity); the
        staging step then checks SHA-256 against the candidate (content integrity). Returns the full path.
        """
        source = Path(source)
        if not source.is_file():
            raise RemotingError(f"cannot copy {source}: no such file", vm=self.vm, host=self.host)
        total = source.stat().st_size

        def chunks(buffer_size: int) -> Iterator[list[str]]:
            sha1 = hashlib.sha1()
            offset = 0
            with source.open("rb") as handle:
                while data := handle.read(buffer_size):
                    offset += len(data)
                    sha1.update(data)
                    item = [base64.b64encode(data).decode()]
                    if offset == total:
                        item.append(base64.b64encode(sha1.hexdigest().encode()).decode())
                    yield item
            if offset == 0:
                yield ["", base64.b64encode(sha1.hexdigest().encode()).decode()]

        def attempt() -> str:
            assert self._pool is not None and self._wsman is not None
            buffer_size = int((self._wsman.max_payload_size - _COPY_HEADER_BYTES) / 4 * 3)
            ps = PowerShell(self._pool)
            ps.add_script(pypsrp_copy_script()).add_argument(destination).add_argument(False)
            self._drive(ps, f"copy {source.name}", timeout, input_data=chunks(buffer_size))
            if ps.had_errors or ps.state != PSInvocationState.COMPLETED or not ps.output:
                detail = "; ".join(redactor.redact(_text(e)) for e in ps.streams.error) or "no output"
                raise RemotingError(f"copying {source.name} to {destination} on {self.host} failed: {detail}",
                                    vm=self.vm, host=self.host)
            return _text(ps.output[-1]).strip()

        return self._with_reconnect(f"copying {source.name} to {destination}", attempt)

    def is_alive(self) -> bool:
        """Ask the host whether our shell still exists (no new connection is opened for it)."""
        with self._lock:
            if self._pool is None:
                return False
            try:
                return bool(self._pool.is_alive(timeout=max(1, math.ceil(self.settings.operation_timeout))))
            except (WinRMError, requests.exceptions.RequestException):
                return False
