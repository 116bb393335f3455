"""The run ledger: every mutation is written (and fsynced) before it happens, so a run killed with SIGKILL
can be cleaned up later by ``patchgate reap``."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        self.record("start", lab=lab_name, lab_file=lab_file, host=socket.gethostname(), pid=os.getpid())

    def record(self, action: str, **fields: Any) -> None:
        entry = {"ts": dt.datetime.now(dt.UTC).isoformat(), "run": self.run_id, "action": action,
                 **fields}
        line = json.dumps(entry, default=str) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

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


def read_ledger(path: Path) -> LedgerState:
    run_id = path.stem
    lab = ""
    lab_file = None
    host = ""
    pid = 0
    ended = False
    dirty: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line torn by SIGKILL
        action = entry.get("action")
        if action == "start":
            lab, lab_file, host, pid = entry.get("lab", ""), entry.get("lab_file"), entry.get("host", ""), \
                int(entry.get("pid", 0))
        elif action == "revert" and entry.get("vm"):
            dirty[entry["vm"]] = entry.get("snapshot", "")
        elif action in ("restored", "reaped") and entry.get("vm"):
            dirty.pop(entry["vm"], None)
        elif action == "end":
            ended = True
    return LedgerState(run_id, lab, lab_file, host, pid, ended, dirty, path)


def process_alive(pid: int, since: dt.datetime | None = None) -> bool:
    """A run is alive while its process is (and is the same process, not a reused pid)."""
    from patchgate.liveness import process_alive as alive

    return alive(pid, since)
