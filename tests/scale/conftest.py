"""Runs of `patchgate validate` for the scale tests, each with its own output and state folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))


@dataclass
class Run:
    out: Path
    proc: subprocess.CompletedProcess[str]

    @property
    def log(self) -> str:
        return self.proc.stdout[-4000:] + self.proc.stderr[-2000:]

    def gate(self) -> dict:
        return json.loads((self.out / "gate.json").read_text(encoding="utf-8"))

    def gate_checks(self) -> set[tuple[str, str, str]]:
        return {(c["vm"], c["invariant"], c["status"]) for c in self.gate()["checks"]}

    def junit_cases(self) -> set[tuple[str, str, str]]:
        cases = set()
        for case in ET.parse(self.out / "junit.xml").getroot().iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            cases.add((case.get("classname", ""), case.get("name", ""), outcome))
        return cases

    def allure_results(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8"))
                for p in sorted((self.out / "allure-results").glob("*-result.json"))]


def validate(out: Path, state: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))
                   and k != "CI"}
    environment.update({"PATCHGATE_STATE_DIR": str(state), **(env or {})})
    proc = subprocess.run([PATCHGATE, "validate", "--out", str(out), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=environment, check=False)
    assert (out / "gate.json").is_file(), f"no gate.json:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Run(out=out, proc=proc)


@pytest.fixture(scope="package")
def run_validate(tmp_path_factory: pytest.TempPathFactory):
    def run(name: str, *args: str, env: dict[str, str] | None = None) -> Run:
        return validate(tmp_path_factory.mktemp(name), tmp_path_factory.mktemp(f"{name}-state"), *args, env=env)

    return run


@pytest.fixture(scope="package")
def single(run_validate) -> Run:
    """KB5070881 on the twin lab in one process (blocked: hotpatch.track fails on three VMs)."""
    return run_validate("single", "--lab", "twin", "--candidate", "KB5070881")
