"""The run ledger: every mutation is written (and fsynced) before it happens, so a run killed with SIGKILL
can be cleaned up later by ``patchgate reap``.

Under pytest-xdist every worker of one run appends to the same ledger (one line per ``write``, opened in append
mode), so each entry carries the pid that wrote it: a VM is abandoned when the process that dirtied it is gone,
whatever happened to the other processes of the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from patchgate.paths import state_dir


def ledger_dir() -> Path:
    folder = state_dir() / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Ledger:
    def __init__(self, run_id: str, lab_name: str, lab_file: str | None, *, folder: Path | None = None) -> None:
        self.run_id = run_id
        self.path = (folder or ledger_dir()) / f"{run_id}.jsonl"
        self._lock = threading.Lock()
        self._start = {"lab": lab_name, "lab_file": lab_file, "host": socket.gethostname(), "pid": os.getpid()}

    def open(self) -> None:
        """Write the start entry. Apart from the constructor: the caller holds the ledger before its first write,
        so Ctrl-C during that write (an fsync on a busy disk) still leaves it someone who writes its end."""
        self.record("start", **self._start)

    def record(self, action: str, **fields: Any) -> None:
        entry = {"ts": dt.datetime.now(dt.UTC).isoformat(), "run": self.run_id, "action": action,
                 "pid": os.getpid(), **fields}
        line = (json.dumps(entry, default=str) + "\n").encode("utf-8")
        # One O_APPEND write per entry (whole lines, even with xdist workers appending too); the fsync happens
        # outside the lock, so VMs recording at the same moment share the disk flush instead of queueing for it.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            with self._lock:
                os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self, outcome: str) -> None:
        self.record("end", outcome=outcome)


@dataclass
class LedgerState:
    run_id: str
    lab: str
    lab_file: str | None
    host: str
    pid: int
    ended: bool
    dirty_vms: dict[str, str]  # vm -> snapshot it must be reverted to
    path: Path
    dirtied_by: dict[str, tuple[int, dt.datetime | None]] = field(default_factory=dict)  # vm -> (pid, since)
    processes: dict[int, dt.datetime | None] = field(default_factory=dict)  # pid -> when it started the ledger
    ended_pids: set[int] = field(default_factory=set)
    pending_wsus: dict[str, Any] | None = None  # an approval on a WSUS outside the lab not undone yet (docs/wsus.md)

    def abandoned_wsus(self) -> dict[str, Any] | None:
        """The pending external approval, once no process of the run runs (on this host): under pytest-xdist
        another worker may still hold the approval its maker left."""
        if self.pending_wsus is None or (self.host and self.host != socket.gethostname()) or self.alive:
            return None
        return self.pending_wsus

    def abandoned_vms(self, alive: "Callable[[int, dt.datetime | None], bool] | None" = None) -> dict[str, str]:
        """Dirty VMs whose dirtying process is gone (on this host); a live run's VMs are never listed."""
        if self.host and self.host != socket.gethostname():
            return {}
        check = alive or _alive
        result: dict[str, str] = {}
        for vm, snapshot in self.dirty_vms.items():
            pid, since = self.dirtied_by.get(vm, (self.pid, self.processes.get(self.pid)))
            if not check(pid, since):
                result[vm] = snapshot
        return result

    @property
    def alive(self) -> bool:
        """Some process of the run still runs here (and has not closed its part of the ledger)."""
        return any(_alive(pid, since) for pid, since in self.processes.items() if pid not in self.ended_pids)


def _alive(pid: int, since: dt.datetime | None) -> bool:
    from patchgate.run.liveness import process_alive as alive

    return alive(pid, since)


def _ts(entry: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(entry.get("ts")))
    except ValueError:
        return None


def read_ledger(path: Path) -> LedgerState:
    run_id = path.stem
    lab = ""
    lab_file = None
    host = ""
    pid = 0
    ended = False
    dirty: dict[str, str] = {}
    dirtied_by: dict[str, tuple[int, dt.datetime | None]] = {}
    processes: dict[int, dt.datetime | None] = {}
    ended_pids: set[int] = set()
    pending_wsus: dict[str, Any] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line torn by SIGKILL
        if not isinstance(entry, dict):
            continue
        action = entry.get("action")
        try:
            writer = int(entry.get("pid") or 0)
        except (TypeError, ValueError):
            writer = 0
        if action == "start":
            lab, lab_file, host = entry.get("lab", ""), entry.get("lab_file"), entry.get("host", "")
            pid = pid or writer
            processes.setdefault(writer, _ts(entry))
        elif action == "revert" and entry.get("vm"):
            dirty[entry["vm"]] = entry.get("snapshot", "")
            writer = writer or pid
            dirtied_by[entry["vm"]] = (writer, processes.get(writer))
        elif action in ("restored", "reaped") and entry.get("vm"):
            dirty.pop(entry["vm"], None)
            dirtied_by.pop(entry["vm"], None)
        elif entry.get("external") and action == "wsus_approve":
            pending_wsus = {"server": entry.get("server"), "kb": entry.get("kb"), "group": entry.get("group"),
                            "approval": None}
        elif entry.get("external") and action == "wsus_approved" and pending_wsus is not None:
            pending_wsus["approval"] = entry.get("approval")
        elif entry.get("external") and action == "wsus_unapprove":
            pending_wsus = None
        elif action == "end":
            ended_pids.add(writer)
            ended = entry.get("outcome") == "reaped" or not (set(processes) - ended_pids)
    return LedgerState(run_id, lab, lab_file, host, pid, ended, dirty, path, dirtied_by, processes, ended_pids,
                       pending_wsus)


def append_entry(path: Path, action: str, **fields: Any) -> None:
    """Add an entry to another run's ledger (``patchgate reap`` recording what it restored for a dead run)."""
    entry = {"ts": dt.datetime.now(dt.UTC).isoformat(), "run": path.stem, "action": action,
             "pid": os.getpid(), **fields}
    torn = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(("\n" if torn else "") + json.dumps(entry, default=str) + "\n")  # after a line SIGKILL tore
        handle.flush()
        os.fsync(handle.fileno())


def ledgers(lab: str | None = None) -> list[LedgerState]:
    """Every run ledger in the state directory (of one lab, if given), oldest first."""
    states: list[LedgerState] = []
    for path in sorted(ledger_dir().glob("*.jsonl")):
        try:
            state = read_ledger(path)
        except OSError:
            continue
        if lab is None or state.lab == lab:
            states.append(state)
    return states
