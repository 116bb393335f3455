"""Helpers for the report tests: run `patchgate validate` / `verify` / `report` as a user does.

Each run uses its own PATCHGATE_STATE_DIR so the local VM leases of other runs on this machine cannot make it
broken, and CI variables are removed so executor.json only appears where a test asks for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_")


@dataclass
class Run:
    out: Path
    proc: subprocess.CompletedProcess[str]

    @property
    def results(self) -> Path:
        return self.out / "allure-results"

    def gate(self) -> dict:
        return json.loads((self.out / "gate.json").read_text(encoding="utf-8"))

    def allure_results(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.results.glob("*-result.json"))]

    def allure_containers(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.results.glob("*-container.json"))]


def clean_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CI_PREFIXES) and k not in ("CI", "GITLAB_CI")}
    env.update({"PATCHGATE_STATE_DIR": str(state_dir), **extra})
    return env


def patchgate(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATCHGATE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def validate(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str, **env: str) -> Run:
    out = tmp_path_factory.mktemp(name)
    state = tmp_path_factory.mktemp(f"{name}-state")
    proc = patchgate("validate", "--out", str(out), *args, env=clean_env(state, **env))
    assert (out / "gate.json").is_file(), f"no gate.json:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Run(out=out, proc=proc)
