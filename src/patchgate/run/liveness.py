"""Is the process that wrote a run tag, lease or ledger still alive on this host?

Shared by the run ledger (``patchgate reap``) and the vSphere reaper: a pid alone is not enough, because pids are
reused, so the process must also have started before the record was written. psutil reads both (and a zombie's
state) on every platform it supports.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psutil

PID_REUSE_SLACK = timedelta(seconds=5)


def process_alive(pid: int, since: datetime | None = None) -> bool:
    """Is ``pid`` running here, and is it the process that wrote the tag (not a later one reusing the pid)?"""
    if pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # dead, waiting for its parent to reap it
        started = datetime.fromtimestamp(process.create_time(), tz=UTC)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by someone else
    return not (since is not None and started > since + PID_REUSE_SLACK)  # a later process reusing the pid
