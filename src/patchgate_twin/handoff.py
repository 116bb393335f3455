"""The twin's process started by ``patchgate validate`` for the suites it runs.

``patchgate validate`` checks the lab's files while its pytest starts. For a lab the twin serves from its own
process, it then forks that process itself and hands it over: the lab and catalogue are loaded already, and
``patchgate validate`` only waits from then on, so nothing it still writes has to be copied for the child. The
suites' harness would otherwise fork the twin from itself when the run starts: it would wait for the child to
build the lab, and then pay for every page of its own memory it writes while the child shares it (thousands of
page faults, before the first revert and during the first burst).

How it is handed over: a pipe only the suites' pytest inherits (its descriptor in ``PATCHGATE_TWIN_HANDOFF_FD``)
carries one line, ``ready <address> <key>`` or ``none``, so the key never appears in an environment or on a
command line. The harness that takes it attaches (``TwinProcess.attach``), relays the twin's log records and
closes the service at the end of the run, writing the disks; ``patchgate validate`` ends the process once pytest
has exited (``discard``: if the harness was killed, the disks stay marked changed, as they always do then).
pytest-xdist workers never see the pipe and fork their own twin, as a pytest run without ``patchgate validate``
does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchgate.errors import HypervisorError

if TYPE_CHECKING:
    from patchgate.config.lab import Lab
    from patchgate_twin.process import TwinProcess

log = logging.getLogger(__name__)

HANDOFF_FD_ENV = "PATCHGATE_TWIN_HANDOFF_FD"
_NONE = "none"


class TwinHandoff:
    """``patchgate validate``'s side: the pipe, the process it may start, and its end."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self._read_open = True
        self._sent = False
        self.process: TwinProcess | None = None

    def child_env(self) -> dict[str, str]:
        return {HANDOFF_FD_ENV: str(self._read)}

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self._read,)

    def child_started(self) -> None:
        self._close_read_end()  # the child holds its own copy

    def _close_read_end(self) -> None:
        if self._read_open:
            self._read_open = False
            os.close(self._read)

    def offer(self, lab: Lab, catalog: Any, twin_catalogs: list[Path]) -> None:
        """Start the twin's process for ``lab`` (checked already, ``catalog`` loaded) and tell the suites where it
        listens. A process that does not start is only logged: the suites then start their own and report
        what they meet, as lab trouble."""
        from patchgate_twin.process import TwinProcess

        try:
            self.process = TwinProcess(lab, catalog, twin_catalogs=[str(f) for f in twin_catalogs],
                                       for_another_process=True)
        except HypervisorError as exc:
            log.debug("the suites start the twin's process themselves: %s", exc)
            self._send(_NONE)
            return
        self._send(f"ready {self.process.address} {self.process.authkey.hex()}")

    def decline(self) -> None:
        """No twin's process from here (not a twin lab, or the suites run under pytest-xdist)."""
        self._send(_NONE)

    def _send(self, line: str) -> None:
        if self._sent:
            return
        self._sent = True
        try:
            os.write(self._write, f"{line}\n".encode("ascii"))
        except OSError:  # the suites are gone already
            pass
        finally:
            os.close(self._write)

    def close(self) -> None:
        """Once the suites have exited: the process ends (its disks as the suites left them)."""
        self.decline()
        self._close_read_end()
        if self.process is not None:
            self.process.discard()


def take_handoff_pipe() -> int | None:
    """The suites' side, at start-up: the pipe's descriptor, taken out of the environment so that nothing this
    process starts (pytest-xdist workers, tools) inherits the name of a descriptor it does not have."""
    value = os.environ.pop(HANDOFF_FD_ENV, None)
    if value is None or not value.isdigit():
        return None
    return int(value)


def attach_handed_over(fd: int, lab_name: str) -> TwinProcess | None:
    """Read the one line (waiting until ``patchgate validate`` has checked the inputs) and attach to the twin's
    process it names; None when it started none or cannot be reached (the caller starts its own)."""
    from patchgate_twin.process import TwinProcess

    try:
        with os.fdopen(fd, "rb") as pipe:
            line = pipe.readline().decode("ascii", "replace").split()
    except OSError:
        return None
    if len(line) != 3 or line[0] != "ready":
        return None
    try:
        return TwinProcess.attach(lab_name, line[1], bytes.fromhex(line[2]))
    except (HypervisorError, ValueError) as exc:
        log.warning("starting the twin's process here: the one patchgate validate started is unusable (%s)", exc)
        return None


def close_handoff_pipe(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
