"""One approval on a WSUS outside the lab for all the pytest-xdist workers of a run (docs/wsus.md).

Each worker runs its own share of the VMs, and each must be served by the same approval: the first worker to get
here approves, the others join it, and only the last one to leave undoes it, once no other worker is still in.
The holders live in a JSON file next to the run's ledger, read and written under ``flock`` (the kernel drops the
lock when its holder dies, however it dies). A holder whose process is gone counts as left, so a worker that dies
cannot keep the approval on the server for ever; after the last process is killed the ledger still names the
pending undo for ``patchgate reap``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from patchgate.atomic import atomic_write
from patchgate.errors import LabError
from patchgate.run.ledger import ledger_dir
from patchgate.run.liveness import process_alive
from patchgate.secrets.redact import redactor
from patchgate.wsus.ops import Approval


class SharedApproval:
    def __init__(self, run_id: str) -> None:
        folder = ledger_dir()
        self.path = folder / f"{run_id}.wsus.json"
        self._lock = folder / f"{run_id}.wsus.lock"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The holders' document, written back only when the block ends without an error."""
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
            doc.setdefault("holders", {})
            doc.setdefault("approval", None)
            yield doc
            atomic_write(self.path, json.dumps(doc))
        finally:
            os.close(fd)  # and with it the lock

    def join(self, approve: Callable[[], Approval]) -> tuple[Approval, bool]:
        """The run's approval (made now by ``approve`` when no worker holds one) and whether this worker made it."""
        with self._locked() as doc:
            if doc.get("failed"):  # its answer may never have come back: nobody approves over it
                raise LabError(f"another pytest-xdist worker of this run could not approve: {doc['failed']}")
            made = doc["approval"] is None
            if made:
                try:
                    doc["approval"] = approve().to_dict()
                except Exception as exc:
                    doc["failed"] = redactor.redact(str(exc)) or type(exc).__name__
                    atomic_write(self.path, json.dumps(doc))
                    raise
            doc["holders"][str(os.getpid())] = dt.datetime.now(dt.UTC).isoformat()
            return Approval.from_dict(doc["approval"]), made

    def leave(self, undo: Callable[[Approval], Any]) -> list[int]:
        """Leave the approval; the last holder undoes it with ``undo``. Returns the workers still holding it."""
        with self._locked() as doc:
            doc["holders"].pop(str(os.getpid()), None)
            doc["holders"] = {pid: since for pid, since in doc["holders"].items()
                              if process_alive(int(pid), dt.datetime.fromisoformat(since))}
            if doc["holders"] or doc["approval"] is None:
                return sorted(int(pid) for pid in doc["holders"])
            undo(Approval.from_dict(doc["approval"]))
            doc["approval"] = None
            return []
