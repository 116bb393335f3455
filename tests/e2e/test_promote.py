"""`patchgate promote`: an approve run of the WSUS twin lab (KB5070893 with Microsoft's later offering rules) goes to
ring1, then ring2, on the twin's production WSUS, read back through the WSUS API over PSRP; every bad case is
refused with exit 4 and one line, and the promotion record verifies (and tampering with it fails `verify`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from patchgate.config.rings import load_rings
from patchgate.wsus.production import production_session, read_kb
from patchgate_twin.production import ProductionWsus, published_files
from support.runs import PATCHGATE, ROOT, clean_env, kill_group, patchgate
from support.waiting import wait_until

pytestmark = pytest.mark.slow

EXAMPLE_LAB = ROOT / "labs" / "twin-wsus.example.yaml"
EXAMPLE_RINGS = ROOT / "labs" / "rings-twin.example.yaml"
USER, PASSWORD = "promoter", "Prod-WSUS-promoter-2026!"
GROUPS = ("ring1-servers", "ring2-servers", "ring2-sql")
CANDIDATES = [ROOT / "candidates" / "KB5070893.yaml", ROOT / "candidates" / "KB5070881.yaml"]


def _refusal(proc) -> str:
    """A refusal: exit 4 and exactly one line on stderr."""
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "promotion refused: " in lines[0], proc.stderr
    return lines[0]


def _rings(folder: Path, port: int, *, soak: str = "2d", name: str = "rings.yaml") -> Path:
    text = EXAMPLE_RINGS.read_text()
    assert "port: 55985" in text and "soak: 2d" in text
    path = folder / name
    path.write_text(text.replace("port: 55985", f"port: {port}").replace("soak: 2d", f"soak: {soak}"))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return clean_env(tmp_path_factory.mktemp("promote-state"), PATCHGATE_PROD_USERNAME=USER,
                     PATCHGATE_PROD_PASSWORD=PASSWORD)


def _serve(files) -> ProductionWsus:
    server = ProductionWsus(username=USER, password=PASSWORD, groups=GROUPS, files=files)
    server.start()
    return server


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """The twin's production WSUS, holding both KBs' packages (SHA-1 and SHA-256), and a rings file for it."""
    server = _serve(published_files(CANDIDATES))
    folder = tmp_path_factory.mktemp("rings")
    port = server.port
    yield server, _rings(folder, port), _rings(folder, port, soak="0", name="rings-nosoak.yaml")
    server.close()


def _approvals(rings_file: Path, kb: str) -> dict[str, dict]:
    """The KB's approvals per group, read back through the WSUS API (the wsus-status op) over PSRP."""
    import os

    rings = load_rings(rings_file)
    saved = {k: os.environ.get(k) for k in ("PATCHGATE_PROD_USERNAME", "PATCHGATE_PROD_PASSWORD")}
    os.environ.update(PATCHGATE_PROD_USERNAME=USER, PATCHGATE_PROD_PASSWORD=PASSWORD)
    try:
        with production_session("wsus-prod-01", rings.servers["wsus-prod-01"]) as session:
            state = read_kb(session, server="wsus-prod-01", kb=kb)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {a.group: a.to_dict() for a in state.approvals}


def _validate(lab: Path, kb: str, out: Path, env: dict[str, str]):
    return patchgate("validate", "--lab", str(lab), "--candidate", kb, "--out", str(out), env=env)


@pytest.fixture(scope="module")
def approved(tmp_path_factory, env) -> Path:
    folder = tmp_path_factory.mktemp("approved")
    lab = folder / "lab.yaml"
    lab.write_text(EXAMPLE_LAB.read_text().replace("image: ws2025-std-wsus-oct2025-incident",
                                                   "image: ws2025-std-wsus-oct2025"))
    proc = _validate(lab, "KB5070893", folder / "out", env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return folder / "out"


@pytest.fixture(scope="module")
def ring1(approved, production, env):
    """ring1 promoted once, for the tests that need it; checked in test_ring1..."""
    _server, rings, _nosoak = production
    return patchgate("promote", str(approved), "--ring", "ring1", "--rings", str(rings), env=env)


def test_a_dry_run_checks_everything_and_changes_nothing(approved, production, env):
    _server, rings, _ = production
    proc = patchgate("promote", str(approved), "--ring", "ring1", "--rings", str(rings), "--dry-run", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dry run: nothing changed; would approve KB5070893 for ring1-servers on wsus-prod-01" in proc.stdout
    assert "packages matched" in proc.stdout
    assert not (approved / "promotions").exists()
    assert _approvals(rings, "KB5070893") == {}
    assert not (Path(env["PATCHGATE_STATE_DIR"]) / "promotions.jsonl").exists()


def test_a_ring_cannot_be_skipped(approved, production, env):
    _server, _rings_file, nosoak = production
    line = _refusal(patchgate("promote", str(approved), "--ring", "ring2", "--rings", str(nosoak), env=env))
    assert "ring ring2 comes after ring ring1" in line and "promote ring1 first" in line


def test_ring1_is_approved_on_production_wsus_with_its_deadline_and_recorded(approved, production, ring1, env):
    _server, rings, _ = production
    assert ring1.returncode == 0, ring1.stdout + ring1.stderr
    approvals = _approvals(rings, "KB5070893")
    assert set(approvals) == {"ring1-servers"} and approvals["ring1-servers"]["action"] == "Install"
    record = json.loads((approved / "promotions" / "ring1.json").read_text())
    assert record["groups"] == ["ring1-servers"] and record["ring"] == "ring1" and record["kb"] == "KB5070893"
    assert record["deadline"] == approvals["ring1-servers"]["deadline"] is not None
    assert record["run"]["gate_sha256"] and record["run"]["run_id"]
    assert "@" in record["promoted_by"] and record["sha256_check"]["result"] == "matched"
    assert record["approvals"] == [approvals["ring1-servers"]]
    ledger = (Path(env["PATCHGATE_STATE_DIR"]) / "promotions.jsonl").read_text().splitlines()
    assert [json.loads(line)["ring"] for line in ledger] == ["ring1"]
    written = [p.read_text() for p in (approved / "promotions").iterdir()] + ledger + [ring1.stdout, ring1.stderr]
    assert not any(PASSWORD in text for text in written)  # the production account never reaches the evidence


def test_ring1_twice_is_refused(approved, production, ring1, env):
    _server, rings, _ = production
    line = _refusal(patchgate("promote", str(approved), "--ring", "ring1", "--rings", str(rings), env=env))
    assert "already approved for ring ring1" in line


def test_ring2_waits_for_its_soak_time_then_is_promoted_with_soak_0(approved, production, ring1, env):
    _server, rings, nosoak = production
    line = _refusal(patchgate("promote", str(approved), "--ring", "ring2", "--rings", str(rings), env=env))
    assert "ring ring2 must wait its soak time until" in line
    assert set(_approvals(rings, "KB5070893")) == {"ring1-servers"}
    proc = patchgate("promote", str(approved), "--ring", "ring2", "--rings", str(nosoak), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(_approvals(rings, "KB5070893")) == set(GROUPS)
    record = json.loads((approved / "promotions" / "ring2.json").read_text())
    assert record["previous_ring"]["ring"] == "ring1" and record["groups"] == ["ring2-servers", "ring2-sql"]


def test_status_lists_every_ring(approved, production, ring1, env):
    _server, rings, _ = production
    proc = patchgate("promote", "--status", "KB5070893", "--rings", str(rings), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("KB5070893 across 2 ring(s)")
    assert "ring1" in lines[1] and "promoted" in lines[1] and "ring1-servers on wsus-prod-01" in lines[1]
    assert "ring2" in lines[2]
    other = patchgate("promote", "--status", "KB5070881", "--rings", str(rings), env=env)
    assert other.returncode == 0 and all("pending" in line for line in other.stdout.splitlines()[1:])


def test_the_promotion_record_verifies_and_tampering_with_it_fails_verify(approved, ring1, env, tmp_path):
    assert ring1.returncode == 0, ring1.stderr
    proc = patchgate("verify", str(approved), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "promotions:" in proc.stdout
    copy = tmp_path / "run"
    shutil.copytree(approved, copy)
    record = copy / "promotions" / "ring1.json"
    record.write_text(record.read_text().replace("ring1-servers", "all-servers"))
    proc = patchgate("verify", str(copy), env=env)
    assert proc.returncode == 1 and "CHANGED  promotions/ring1.json" in proc.stdout
    (copy / "promotions" / "ring9.json").write_text("{}")
    assert "EXTRA    promotions/ring9.json" in patchgate("verify", str(copy), env=env).stdout


def test_a_tampered_run_is_refused(approved, production, env, tmp_path):
    _server, rings, _ = production
    copy = tmp_path / "run"
    shutil.copytree(approved, copy, ignore=shutil.ignore_patterns("promotions"))
    gate = copy / "gate.json"
    gate.write_text(gate.read_text().replace('"reason": "', '"reason": "edited: ', 1))
    line = _refusal(patchgate("promote", str(copy), "--ring", "ring1", "--rings", str(rings), env=env))
    assert "`patchgate verify` fails: CHANGED  gate.json" in line


def test_a_run_that_should_be_signed_and_is_not_is_refused_even_with_a_rebuilt_manifest(approved, production, env,
                                                                                     tmp_path):
    """Whoever rewrites run-manifest.json and the evidence manifest to match still cannot drop the signature."""
    from patchgate.evidence.manifests import build_evidence_manifest

    _server, rings, _ = production
    copy = tmp_path / "run"
    shutil.copytree(approved, copy, ignore=shutil.ignore_patterns("promotions"))
    manifest = json.loads((copy / "run-manifest.json").read_text())
    manifest["signing"] = {"required": True, "key": "patchgate-verdicts", "mount": "transit"}
    (copy / "run-manifest.json").write_text(json.dumps(manifest))
    (copy / "evidence-manifest.json").write_text(json.dumps(build_evidence_manifest(copy, manifest["run_id"])))
    line = _refusal(patchgate("promote", str(copy), "--ring", "ring1", "--rings", str(rings), env=env))
    assert "`patchgate verify` fails: INVALID  no signature" in line


def test_a_run_older_than_max_age_is_refused(approved, production, env):
    _server, rings, _ = production
    line = _refusal(patchgate("promote", str(approved), "--ring", "ring1", "--rings", str(rings), "--max-age", "0",
                              env=env))
    assert "older than --max-age 0s" in line


def test_a_block_run_is_refused(tmp_path, production, env):
    _server, rings, _ = production
    proc = _validate(EXAMPLE_LAB, "KB5070881", tmp_path / "out", env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    line = _refusal(patchgate("promote", str(tmp_path / "out"), "--ring", "ring1", "--rings", str(rings), env=env))
    assert "the run's verdict is BLOCK, not APPROVE" in line
    assert "KB5070881" not in json.dumps(_approvals(rings, "KB5070881"))


def test_a_ring_whose_group_production_lacks_is_refused_before_anything_changes(approved, production, env,
                                                                             tmp_path):
    _server, rings, _ = production
    other = tmp_path / "rings.yaml"
    other.write_text(rings.read_text().replace("groups: [ring1-servers]", "groups: [ring1-servers, ring1-new]"))
    before = _approvals(rings, "KB5070893")
    line = _refusal(patchgate("promote", str(approved), "--ring", "ring1", "--rings", str(other), env=env))
    assert "has no computer target group ring1-new of ring ring1" in line
    assert _approvals(rings, "KB5070893") == before


def test_a_package_that_is_not_the_one_wsus_holds_is_refused(approved, env, tmp_path):
    wrong = published_files([CANDIDATES[1]])["KB5070881"]  # another package under the KB's name
    server = _serve({"KB5070893": wrong})
    try:
        rings = _rings(tmp_path, server.port)
        line = _refusal(patchgate("promote", str(approved), "--ring", "ring1", "--rings", str(rings), env=env))
        assert "is not a file WSUS wsus-prod-01 holds of KB5070893" in line
    finally:
        server.close()


def test_a_sha256_wsus_cannot_give_is_refused_unless_the_override_is_given(approved, env, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(approved, copy, ignore=shutil.ignore_patterns("promotions"))
    server = _serve(published_files([CANDIDATES[0]], sha256=False))
    try:
        rings = _rings(tmp_path, server.port)
        line = _refusal(patchgate("promote", str(copy), "--ring", "ring1", "--rings", str(rings), env=env))
        assert "gives no SHA-256 for the files of KB5070893" in line and "--allow-unverified-sha256" in line
        proc = patchgate("promote", str(copy), "--ring", "ring1", "--rings", str(rings),
                         "--allow-unverified-sha256", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        record = json.loads((copy / "promotions" / "ring1.json").read_text())
        assert record["sha256_check"]["result"] == "unverified (--allow-unverified-sha256)"
    finally:
        server.close()


def test_the_example_rings_file_works_with_patchgate_twin_wsus(env, tmp_path):
    rings = tmp_path / "rings.yaml"
    proc = subprocess.Popen([PATCHGATE, "twin-wsus", "--rings-out", str(rings)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until(lambda: rings.is_file() or proc.poll() is not None, "patchgate twin-wsus wrote its rings file",
                   timeout=60)
        assert proc.poll() is None, proc.communicate()
        status = patchgate("promote", "--status", "KB5070893", "--rings", str(rings), env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert [line.split()[:2] for line in status.stdout.splitlines()[1:]] == [["ring1", "pending"],
                                                                                  ["ring2", "pending"]]
        assert "waits for ring1" in status.stdout
    finally:
        kill_group(proc)
    unreachable = patchgate("promote", "--status", "KB5070893", "--rings", str(rings), env=env)
    assert unreachable.returncode == 2 and "UNKNOWN" in unreachable.stdout
