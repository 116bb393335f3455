"""End-to-end runs shared by every test that reads them: one `patchgate validate` per configuration per test
session, however many folders and pytest-xdist workers ask for it.

The first worker to ask runs it into a folder all workers of the session see (the parent of each worker's base
temporary folder) and records its process; the others wait on the same lock and read that record. The tests only
read a shared run: one that would change its folder copies it first (see report/conftest.py ``run_copy``).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from pathlib import Path

import pytest

from support.runs import Run, run_validate


def shared_validate(factory: pytest.TempPathFactory, worker_id: str, name: str, *args: str,
                    env: dict[str, str] | None = None) -> Run:
    """``patchgate validate --out <shared>/NAME/out ARGS`` once per session; every caller gets the same Run."""
    base = factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / "shared-runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "run.json"
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.is_file():
            data = json.loads(record.read_text(encoding="utf-8"))
            proc = subprocess.CompletedProcess(data["args"], data["returncode"], data["stdout"], data["stderr"])
            return Run(out=Path(data["out"]), proc=proc)
        run = run_validate(folder / "out", folder / "state", *args, env=env)
        record.write_text(json.dumps({"args": list(run.proc.args), "returncode": run.proc.returncode,
                                      "stdout": run.proc.stdout, "stderr": run.proc.stderr,
                                      "out": str(run.out)}), encoding="utf-8")
        return run
