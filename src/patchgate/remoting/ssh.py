"""PowerShell over Windows' built-in OpenSSH server (paramiko), for labs that turn WinRM off.

Each ``run`` executes ``powershell -NoProfile -NonInteractive -EncodedCommand <bootstrap>``. The bootstrap
is a fixed script (UTF-16LE, base64, as ``-EncodedCommand`` requires); the actual script, its parameters
and any pipeline input travel on stdin as base64 lines, because a Windows command line stops at 32,767
characters and values must never be spliced into script text:

    line 1   base64(UTF-8 script body)
    line 2   base64(UTF-8 JSON {"named": {...}, "positional": [...]})   -> splatted, never interpolated
    line 3.. "I:" + base64(UTF-8 input string), one per pipeline input object (may be empty)

The bootstrap answers with one line per object on stdout: ``O:`` + base64(UTF-8 text) for output,
``E:`` + base64(UTF-8 text) for an error record; the exit code is 1 when the script threw.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import paramiko

from patchgate.config.lab import SshSettings
from patchgate.errors import LabError, LabTimeout, RemotingAuthError, RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.base import Script, ScriptResult, SessionIdentity
from patchgate.remoting.logging_hygiene import quiet_transport_loggers
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import redactor

log = logging.getLogger(__name__)
T = TypeVar("T")

BOOTSTRAP_MARKER = "# patchgate-ssh-bootstrap v1"
BOOTSTRAP = BOOTSTRAP_MARKER + r"""
$ErrorActionPreference = 'Stop'
$utf8 = New-Object System.Text.UTF8Encoding $false
function ConvertFrom-PgLine([string]$Line) {
    if ($Line.Trim()) { $utf8.GetString([Convert]::FromBase64String($Line.Trim())) } else { '' }
}
function Write-PgLine([string]$Tag, [string]$Text) {
    [Console]::Out.WriteLine($Tag + [Convert]::ToBase64String($utf8.GetBytes($Text)))
}
$lines = [Console]::In.ReadToEnd() -split "`n"
$body = ConvertFrom-PgLine $lines[0]
$spec = ConvertFrom-PgLine $lines[1] | ConvertFrom-Json
$named = @{}
if ($spec.named) { foreach ($p in $spec.named.PSObject.Properties) { $named[$p.Name] = $p.Value } }
$positional = @()
if ($spec.positional) { $positional = @($spec.positional) }
$inputs = New-Object System.Collections.Generic.List[string]
for ($i = 2; $i -lt $lines.Count; $i++) {
    if ($lines[$i].StartsWith('I:')) { $inputs.Add((ConvertFrom-PgLine $lines[$i].Substring(2))) }
}
$block = [ScriptBlock]::Create($body)
$code = 0
try {
    $ErrorActionPreference = 'Continue'
    if ($inputs.Count -gt 0) { $results = $inputs | & $block @positional @named 2>&1 }
    else { $results = & $block @positional @named 2>&1 }
    foreach ($r in $results) {
        if ($r -is [System.Management.Automation.ErrorRecord]) { Write-PgLine 'E:' ($r | Out-String).Trim() }
        elseif ($r -is [string]) { Write-PgLine 'O:' $r }
        else { Write-PgLine 'O:' ($r | Out-String).TrimEnd() }
    }
} catch {
    Write-PgLine 'E:' ($_ | Out-String).Trim()
    $code = 1
}
exit $code
"""

COPY_CHUNK = 1 << 20  # raw bytes per input line when copying a file


def encode_command(script: str) -> str:
    """``-EncodedCommand`` wants base64 of UTF-16LE."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def command_line() -> str:
    return f"powershell -NoProfile -NonInteractive -EncodedCommand {encode_command(BOOTSTRAP)}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(line: str) -> str:
    return base64.b64decode(line.strip()).decode("utf-8") if line.strip() else ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def stdin_lines(body: str, named: dict[str, Any] | None = None, positional: Iterable[Any] = (),
                inputs: Iterable[str] = ()) -> Iterator[bytes]:
    """The bootstrap's stdin, line by line (``inputs`` may be a generator: a copied file is never whole)."""
    spec = {"named": _jsonable(named or {}), "positional": _jsonable(list(positional))}
    yield (_b64(body) + "\n").encode("ascii")
    yield (_b64(json.dumps(spec)) + "\n").encode("ascii")
    for item in inputs:
        yield ("I:" + _b64(str(item)) + "\n").encode("ascii")


def build_stdin(body: str, named: dict[str, Any] | None = None, positional: Iterable[Any] = (),
                inputs: Iterable[str] = ()) -> bytes:
    return b"".join(stdin_lines(body, named, positional, inputs))


def parse_stdin(data: bytes) -> tuple[str, dict[str, Any], list[Any], list[str]]:
    """The far side of ``build_stdin`` (the twin's powershell shim uses it)."""
    lines = data.decode("ascii").split("\n")
    body = _unb64(lines[0]) if lines else ""
    spec = json.loads(_unb64(lines[1])) if len(lines) > 1 and lines[1].strip() else {}
    inputs = [_unb64(line[2:]) for line in lines[2:] if line.startswith("I:")]
    return body, dict(spec.get("named") or {}), list(spec.get("positional") or []), inputs


def render_output(output: Iterable[str], errors: Iterable[str]) -> str:
    """What the bootstrap prints for these objects (the shim prints the same)."""
    return "".join(f"O:{_b64(o)}\n" for o in output) + "".join(f"E:{_b64(e)}\n" for e in errors)


def parse_output(stdout: str) -> tuple[list[str], list[str]]:
    output: list[str] = []
    errors: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("O:"):
            output.append(_unb64(line[2:]))
        elif line.startswith("E:"):
            errors.append(_unb64(line[2:]))
        elif line.strip():
            output.append(line)  # text printed outside the protocol (a profile, a banner): keep it visible
    return output, errors


class SshRemoting:
    """``Remoting`` over SSH. ``cert_validation`` reports whether host keys are checked."""

    kind = "ssh"

    def __init__(self, settings: SshSettings | None = None) -> None:
        self.settings = settings or SshSettings()
        self.cert_validation = bool(self.settings.host_key_checking)
        quiet_transport_loggers()

    def prepare(self) -> None:
        """Nothing to load ahead: paramiko is loaded with this module."""

    def open(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials) -> "SshSession":
        session = SshSession(vm_name, endpoint, credentials, self.settings)
        session.connect()
        return session


class SshSession(SessionIdentity):
    """One VM's SSH connection; each script runs as one powershell process reading its input from stdin."""

    def __init__(self, vm_name: str, endpoint: GuestEndpoint, credentials: Credentials,
                 settings: SshSettings) -> None:
        super().__init__(vm_name, endpoint, credentials, port=endpoint.port or settings.port,
                         staging_dir=settings.staging_dir, cert_validation=bool(settings.host_key_checking))
        self.settings = settings
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SshSession(vm={self.vm!r}, host={self.host!r}, port={self.port})"

    def connect(self) -> None:
        s = self.settings
        client = paramiko.SSHClient()
        if s.host_key_checking:
            client.load_system_host_keys()
            if s.known_hosts:
                try:
                    client.load_host_keys(str(s.known_hosts))
                except OSError as exc:
                    raise RemotingError(f"cannot read known_hosts {s.known_hosts}: {exc.strerror}",
                                        vm=self.vm, host=self.host) from None
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                self.address, port=self.port, username=self._credentials.username,
                password=self._credentials.password.get_secret_value() or None,
                key_filename=str(s.identity_file) if s.identity_file else None,
                timeout=s.connect_timeout, banner_timeout=s.connect_timeout, auth_timeout=s.connect_timeout,
                look_for_keys=False, allow_agent=False,
            )
        except Exception as exc:
            client.close()
            raise self._error(exc, "connecting") from None
        self._client = client
        self._closed = False
        log.info("ssh: connected to %s:%s for %s", self.host, self.port, self.vm)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> "SshSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, exc: BaseException, what: str, *, reconnected: bool = False) -> LabError:
        if isinstance(exc, LabError):
            return exc
        where = f"{self.host}:{self.port}"
        suffix = " (after one reconnect)" if reconnected else ""
        if isinstance(exc, paramiko.BadHostKeyException):
            return RemotingError(f"the host key of {where} does not match known_hosts: refusing to connect",
                                 vm=self.vm, host=self.host)
        if isinstance(exc, paramiko.AuthenticationException):
            return RemotingAuthError(f"{where} refused the credentials of user '{self._credentials.username}' "
                                     f"over ssh while {what}", vm=self.vm, host=self.host)
        if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
            return RemotingError(f"{where} is not in known_hosts ({self.settings.known_hosts or 'system'}); add "
                                 f"its host key, or set host_key_checking: false for a throwaway lab",
                                 vm=self.vm, host=self.host)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return LabTimeout(f"{where} did not answer within {self.settings.connect_timeout:g}s while "
                              f"{what}{suffix}", vm=self.vm, host=self.host)
        return RemotingError(f"{type(exc).__name__} talking to {where} over ssh while {what}{suffix}: "
                             f"{redactor.redact(str(exc))}", vm=self.vm, host=self.host)

    def _with_reconnect(self, what: str, attempt: Callable[[], T]) -> T:
        """Reconnect at most once per call: either because the transport is already gone, or because the
        attempt failed on a dropped connection."""
        with self._lock:
            if self._closed:
                raise RemotingError(f"the session to {self.host} is closed", vm=self.vm, host=self.host)
            reconnected = False
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                if self._client is not None:
                    self._client.close()
                    self.reconnects += 1
                    reconnected = True
                self.connect()
            try:
                return attempt()
            except LabError:
                raise
            except (paramiko.SSHException, OSError, EOFError) as exc:
                if reconnected:
                    raise self._error(exc, what, reconnected=True) from None
                log.warning("ssh: %s on %s:%s while %s; reconnecting once", type(exc).__name__, self.host,
                            self.port, what)
            if self._client is not None:
                self._client.close()
            self.reconnects += 1
            try:
                self.connect()
                return attempt()
            except LabError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self._error(exc, what, reconnected=True) from None

    def _exec(self, name: str, stdin: bytes | Callable[[], Iterable[bytes]],
              timeout: float | None) -> tuple[int, str, str]:
        """Run the bootstrap; ``stdin``: the bytes, or a function giving them piece by piece (sent as made)."""
        assert self._client is not None
        limit = timeout or self.settings.command_timeout
        deadline = time.monotonic() + limit
        transport = self._client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=self.settings.connect_timeout)
        self.pipelines += 1
        try:
            channel.exec_command(command_line())
            for piece in ([stdin] if isinstance(stdin, bytes) else stdin()):
                channel.sendall(piece)
                if time.monotonic() > deadline:
                    raise LabTimeout(f"script '{name}' ran past its {limit:g}s limit on {self.host}",
                                     vm=self.vm, host=self.host)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                while channel.recv_ready():
                    out += channel.recv(65536)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    raise LabTimeout(f"script '{name}' ran past its {limit:g}s limit on {self.host}",
                                     vm=self.vm, host=self.host)
                select.select([channel], [], [], 0.1)
            return channel.recv_exit_status(), out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        finally:
            channel.close()

    def _result(self, name: str, rc: int, stdout: str, stderr: str) -> ScriptResult:
        output, errors = parse_output(stdout)
        if rc != 0 and not errors:
            text = stderr.strip() or "no output"
            errors = [redactor.redact(f"powershell exited with {rc}: {text}")]
        return ScriptResult(name=name, output=output, errors=[redactor.redact(e) for e in errors])

    def run(self, script: Script, *, timeout: float | None = None) -> ScriptResult:
        stdin = build_stdin(script.body, script.parameters)
        return self._with_reconnect(f"running '{script.name}'",
                                    lambda: self._result(script.name, *self._exec(script.name, stdin, timeout)))

    def copy_file(self, source: Path, destination: str, *, timeout: float | None = None) -> str:
        """pypsrp's copy script (same as the psrp kind) fed through the bootstrap's input lines.

        SFTP would need the Windows path mapped to ``/C:/...`` and a second subsystem to allow; this way
        the copy has the same remote SHA-1 check and the same twin handling as over WSMan."""
        from patchgate.remoting.base import pypsrp_copy_script

        source = Path(source)
        if not source.is_file():
            raise RemotingError(f"cannot copy {source}: no such file", vm=self.vm, host=self.host)

        def chunks() -> Iterator[str]:  # read, hashed and encoded by chunks: the file is never whole in memory
            sha1 = hashlib.sha1()
            with source.open("rb") as handle:
                first = True
                while (data := handle.read(COPY_CHUNK)) or first:
                    first = False
                    sha1.update(data)
                    yield base64.b64encode(data).decode()
            yield base64.b64encode(sha1.hexdigest().encode()).decode()

        body = pypsrp_copy_script()

        def stdin() -> Iterator[bytes]:
            return stdin_lines(body, positional=[destination, False], inputs=chunks())

        name = f"copy {source.name}"
        result = self._with_reconnect(f"copying {source.name} to {destination}",
                                      lambda: self._result(name, *self._exec(name, stdin, timeout)))
        if result.errors or not result.output:
            raise RemotingError(f"copying {source.name} to {destination} on {self.host} failed: "
                                f"{'; '.join(result.errors) or 'no output'}", vm=self.vm, host=self.host)
        return result.output[-1].strip()
