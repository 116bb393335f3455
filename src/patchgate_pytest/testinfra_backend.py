"""testinfra over patchgate's own remoting session, so suites can write ``host.run("Get-Service WinRM")``.

testinfra's ``winrm`` backend opens a new WinRS cmd shell per command and takes the password from the
host URL; this backend reuses the VM's long-lived session (one pipeline per command) and its credentials
never appear in a URL. Commands are PowerShell. ``rc`` is 0 when the pipeline wrote no error record and 1
otherwise (PowerShell has no exit code for a pipeline; for a native program, end the command with
``; exit $LASTEXITCODE`` and read ``stdout``). Lab trouble (RemotingError) is raised, never turned into a
failed command, so it shows as broken rather than as a product failure.
"""

from __future__ import annotations

from typing import Any

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from patchgate.remoting.base import RemoteSession, Script


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted literal: nothing inside is expanded; a quote is doubled."""
    text = str(value)
    for quote in ("\u2018", "\u2019", "\u201a", "\u201b"):  # PowerShell treats these as quotes too
        text = text.replace(quote, quote * 2)
    return "'" + text.replace("'", "''") + "'"


class PatchgatePsrpBackend(BaseBackend):
    NAME = "patchgate-psrp"

    def __init__(self, session: RemoteSession, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        self.session = session
        self.timeout = timeout
        super().__init__(session.host, *args, **kwargs)

    @staticmethod
    def quote(command: str, *args: str) -> str:
        if args:
            return command % tuple(ps_quote(a) for a in args)
        return command

    def get_encoding(self) -> str:
        return "utf-8"  # PSRP carries text as UTF-16/UTF-8 XML; no code page to discover

    def get_pytest_id(self) -> str:
        return f"{self.NAME}://{self.session.host}"

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        text = self.get_command(command, *args)
        result = self.session.run(Script(name="testinfra", body=text), timeout=kwargs.get("timeout", self.timeout))
        rc = 1 if result.errors else 0
        return self.result(rc, self.encode(text), "\n".join(result.output), "\n".join(result.errors))


def testinfra_host(session: RemoteSession, *, timeout: float | None = None) -> testinfra.host.Host:
    """A testinfra ``Host`` whose commands run on ``session`` (psrp or ssh kind)."""
    backend = PatchgatePsrpBackend(session, timeout=timeout)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


testinfra_host.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test, despite its name
