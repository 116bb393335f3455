"""A suite author's view: a suite folder of one's own, plain `pytest` (patchgate's plugin is installed), and the
testinfra `host` fixture runs commands on a lab VM over the lab's remoting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SUITE = '''
from patchgate_pytest.invariants import applies_to, invariant

pytestmark = applies_to("wsus-server")


@invariant("services.winrm_answers", severity="minor")
def test_winrm_service_is_reported_running(obs, host):
    result = host.run("Get-Service WinRM")
    assert result.rc == 0, result.stderr
    assert "Running" in result.stdout and "WinRM" in result.stdout
    assert host.check_output("hostname") == "WS25-WSUS-01"
    missing = host.run("Get-Service NoSuchService")
    assert missing.rc != 0 and "Cannot find any service" in missing.stderr
'''

def test_host_fixture_runs_commands_through_the_lab_remoting(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    # no conftest.py: installing patchgate registers its pytest layer (the pytest11 entry point)
    (suite / "test_host.py").write_text(SUITE)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(suite), "--rootdir", str(suite), "-p",
                           "no:cacheprovider", "--lab", "twin", "--candidate", "KB5070893", "--out", str(out), "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    gate = json.loads((out / "gate.json").read_text())
    checks = [(c["vm"], c["status"]) for c in gate["checks"]]
    assert checks == [("ws25-wsus-01", "passed")]
    assert gate["verdict"] == "approve"
