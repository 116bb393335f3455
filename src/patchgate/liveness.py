"""Is the process that wrote a run tag, lease or ledger still alive on this host?

Shared by the run ledger (``patchgate reap``) and the vSphere reaper: a pid alone is not enough, because pids are
reused, so the process must also have started before the record was written.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

PID_REUSE_SLACK = timedelta(seconds=5)


def _proc_start(pid: int) -> datetime | None:
    """When a local process started (Linux /proc); None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat(5), counted after the command name
        with open("/proc/stat", encoding="ascii") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), tz=UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_alive(pid: int, since: datetime | None = None) -> bool:
    """Is ``pid`` running here, and is it the process that wrote the tag (not a later one reusing the pid)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if os.path.exists(f"/proc/{pid}/stat"):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False  # a zombie: dead, waiting for its parent to reap it
        except (OSError, IndexError):
            pass
    started = _proc_start(pid)
    if since is not None and started is not None and started > since + PID_REUSE_SLACK:
        return False  # pid reused by a process that started after the tag was written
    return True


