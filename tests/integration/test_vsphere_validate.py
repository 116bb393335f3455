"""Issue 7 end to end: `patchgate validate --lab` a vSphere lab on govmomi's simulator (started here on
127.0.0.1), with the twin as each VM's guest OS, gives the verdicts of labs/twin.yaml.

TLS checking stays on (the simulator's certificate as CA bundle, or its pinned thumbprint); the
hypervisor credentials come from OpenBao or from the environment; gate.json records the TLS flags.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.openbao import OpenBao

from patchgate.config import load_lab
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.simulator import Vcsim

from .helpers import clean_env, explain, from_example, gate, outcomes, patchgate
from .vaultlab import VaultLab, provision

pytestmark = pytest.mark.slow

CANDIDATES = ("KB5070881", "KB5070893")
EXPECTED = {"KB5070881": ("block", 1), "KB5070893": ("approve", 0)}
GUEST_TIMEOUTS = {"tools_timeout": 60, "heartbeat_timeout": 60, "ip_timeout": 60, "task_timeout": 120}


def simulator_lab(sim: Vcsim, path: Path, *, secrets: dict | None = None, **settings: object) -> Path:
    """labs/vsphere-sim.example.yaml pointed at this simulator (its URL and certificate)."""
    hypervisor = {"url": sim.url, "ca_bundle": str(sim.cert_path), **GUEST_TIMEOUTS, **settings}
    extra = {"secrets": secrets} if secrets is not None else {}
    return from_example("vsphere-sim.example.yaml", path, hypervisor_settings=hypervisor, name=path.stem, **extra)


@pytest.fixture(scope="module")
def twin_runs(blocked_run, approved_run) -> dict[str, Path]:
    """labs/twin.yaml's runs of both candidates: the session's shared runs (tests/conftest.py)."""
    runs = {"KB5070881": blocked_run, "KB5070893": approved_run}
    for kb, run in runs.items():
        assert run.proc.returncode == EXPECTED[kb][1], explain(run.proc)
    return {kb: run.out for kb, run in runs.items()}


@pytest.fixture(scope="module")
def sim_vault(openbao: OpenBao, simulator: Vcsim) -> VaultLab:
    """The simulator's login stored in OpenBao as the lab's vCenter credentials."""
    return provision(openbao, hypervisor=(simulator.username, simulator.password))


@pytest.fixture(scope="module")
def vault_lab_file(simulator: Vcsim, sim_vault: VaultLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("vsphere-vault")
    return simulator_lab(simulator, base / "vsphere-sim.yaml",
                         secrets=sim_vault.secrets_section(auth="token", hypervisor=True, signing=False))


@pytest.fixture(scope="module")
def vsphere_runs(simulator: Vcsim, sim_vault: VaultLab, vault_lab_file: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Both candidates on the simulator lab, one after the other (they use the same simulator VMs)."""
    base = tmp_path_factory.mktemp("vsphere-runs")
    env = clean_env(base / "state", **sim_vault.env("token"))
    runs = {}
    for kb in CANDIDATES:
        out = base / kb
        runs[kb] = (patchgate("validate", "--lab", str(vault_lab_file), "--candidate", kb, "--out", str(out),
                              env=env), out)
    return runs


@pytest.mark.parametrize("kb", CANDIDATES)
def test_simulator_lab_gives_the_twin_verdict(kb: str, twin_runs, vsphere_runs) -> None:
    proc, out = vsphere_runs[kb]
    verdict, code = EXPECTED[kb]
    assert proc.returncode == code, explain(proc)
    data = gate(out)
    assert data["verdict"] == verdict and data["lab"]["hypervisor"] == "vsphere"
    reference = twin_runs[kb]
    assert data["verdict"] == gate(reference)["verdict"]
    assert outcomes(out) == outcomes(reference)  # the same checks, VMs and statuses, one by one
    if kb == "KB5070881":
        failed = {vm for (vm, invariant), status in outcomes(out).items() if status == "failed"}
        assert failed == {"ws25-hp-01", "ws25-az-01", "ws25-wsus-01"}
        assert {inv for (_vm, inv), status in outcomes(out).items() if status == "failed"} == {"hotpatch.track"}


def test_simulator_run_went_through_vsphere_with_tls_checked(vsphere_runs) -> None:
    for _proc, out in vsphere_runs.values():
        data = gate(out)
        assert data["cert_validation"]["hypervisor"] is True
        for vm in data["vms"]:
            assert vm["snapshot"]["identifier"].startswith("snapshot-"), vm["snapshot"]  # a vSphere snapshot
            steps = [s["name"] for s in vm["steps"]]
            assert steps[:3] == ["revert", "power_on", "wait_ready"] and steps[-1] == "restore"
            assert vm["restored"] is True and vm["error"] is None


def test_run_tags_are_cleared_after_the_runs(simulator: Vcsim, vault_lab_file: Path, vsphere_runs) -> None:
    lab = load_lab(vault_lab_file)
    hv = VsphereHypervisor(lab.hypervisor.settings, simulator.credentials, lab.name)  # type: ignore[arg-type]
    hv.connect()
    try:
        for spec in lab.vms:
            assert hv.run_tag(spec) is None, f"{spec.name} is still tagged by a run"
    finally:
        hv.close()


def _credentials_from_env(simulator: Vcsim, tmp_path: Path) -> dict[str, str]:
    """Guest and vCenter credentials from the environment (no Vault), and the test's own state folder."""
    return clean_env(tmp_path / "state", PATCHGATE_USERNAME="Administrator", PATCHGATE_PASSWORD="twin-guest-pw-1",
                     PATCHGATE_HYPERVISOR_USERNAME=simulator.username,
                     PATCHGATE_HYPERVISOR_PASSWORD=simulator.password)


def test_thumbprint_pinning_and_env_credentials(simulator: Vcsim, tmp_path: Path) -> None:
    """No CA bundle: the pinned SHA-256 thumbprint alone trusts the simulator; credentials from the env."""
    lab = simulator_lab(simulator, tmp_path / "vsphere-pinned.yaml", thumbprint=simulator.thumbprint,
                        ca_bundle=None)
    env = _credentials_from_env(simulator, tmp_path)
    proc = patchgate("validate", "--lab", str(lab), "--candidate", "KB5070881", "--vm", "ws25-hp-01",
                     "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 1, explain(proc)
    data = gate(tmp_path / "out")
    assert data["cert_validation"]["hypervisor"] is True
    assert outcomes(tmp_path / "out")[("ws25-hp-01", "hotpatch.track")] == "failed"
    assert simulator.password not in proc.stdout + proc.stderr


def test_wrong_thumbprint_is_a_broken_run_never_an_approval(simulator: Vcsim, tmp_path: Path) -> None:
    lab = simulator_lab(simulator, tmp_path / "vsphere-wrong-pin.yaml", thumbprint="AB" * 32, ca_bundle=None)
    env = _credentials_from_env(simulator, tmp_path)
    proc = patchgate("validate", "--lab", str(lab), "--candidate", "KB5070893", "--vm", "ws25-mbr-01",
                     "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2, explain(proc)
    data = gate(tmp_path / "out")
    assert data["verdict"] == "inconclusive"
    assert "thumbprint" in proc.stdout, explain(proc)


def test_turning_tls_checks_off_is_recorded(simulator: Vcsim, tmp_path: Path) -> None:
    lab = simulator_lab(simulator, tmp_path / "vsphere-insecure.yaml", cert_validation=False, ca_bundle=None)
    env = _credentials_from_env(simulator, tmp_path)
    proc = patchgate("validate", "--lab", str(lab), "--candidate", "KB5070893", "--vm", "ws25-mbr-01",
                     "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0, explain(proc)
    data = gate(tmp_path / "out")
    assert data["cert_validation"]["hypervisor"] is False
    manifest = (tmp_path / "out" / "run-manifest.json").read_text()
    assert '"hypervisor": false' in manifest
