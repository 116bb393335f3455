"""Work shared by every test that reads it: one result per name per test session, however many folders and
pytest-xdist workers ask for it.

The first worker to ask computes it in a folder all workers of the session see (the parent of each worker's base
temporary folder) and records it; the others wait on the same lock and read that record. The tests only read a
shared result: one that would change its folder copies it first (see report/conftest.py ``run_copy``).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from support.runs import Run, run_validate

T = TypeVar("T")


def once_per_session(factory: pytest.TempPathFactory, worker_id: str, name: str, make: Callable[[Path], T],
                     save: Callable[[T], Any], load: Callable[[Any], T]) -> T:
    """``make(folder)`` once per session; every caller gets it (``save`` makes it JSON, ``load`` reads it back)."""
    base = factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / "shared" / name
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "record.json"
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.is_file():
            return load(json.loads(record.read_text(encoding="utf-8")))
        result = make(folder)
        record.write_text(json.dumps(save(result)), encoding="utf-8")
        return result


def shared_validate(factory: pytest.TempPathFactory, worker_id: str, name: str, *args: str,
                    env: dict[str, str] | None = None) -> Run:
    """``patchgate validate --out <shared>/NAME/out ARGS`` once per session; every caller gets the same Run."""
    def make(folder: Path) -> Run:
        return run_validate(folder / "out", folder / "state", *args, env=env)

    def save(run: Run) -> dict[str, Any]:
        return {"args": list(run.proc.args), "returncode": run.proc.returncode, "stdout": run.proc.stdout,
                "stderr": run.proc.stderr, "out": str(run.out)}

    def load(data: dict[str, Any]) -> Run:
        proc = subprocess.CompletedProcess(data["args"], data["returncode"], data["stdout"], data["stderr"])
        return Run(out=Path(data["out"]), proc=proc)

    return once_per_session(factory, worker_id, name, make, save, load)
