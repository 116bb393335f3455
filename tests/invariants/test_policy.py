"""Lab policy in real runs: a waiver turns a block into an approve (listed in gate.json with owner, expiry and
justification) until its expiry date, and each allowlist kind lets its change pass while still recording it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from patchgate_twin.catalog import Catalog
from tests.invariants import catalogue_runs as cr
from tests.invariants.catalogue_runs import Run, vm_name

pytestmark = pytest.mark.slow

IMAGE = "ws2025-dc-hotpatch-oct2025"
VM = vm_name(IMAGE)
WAIVER = {"invariant": "services.configuration", "vms": [VM], "candidate": "KB9900002",
          "justification": "Spooler start type change is known and tracked in CHG-4711",
          "owner": "jane.doe@example.com", "expires": "2026-01-31"}

# scenario -> (KB, policy, PATCHGATE_TODAY)
THROUGH_THE_CLI = {"waiver-expired"}
SCENARIOS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "waiver-active": ("KB9900002", {"waivers": [WAIVER]}, "2026-01-31"),
    "waiver-expired": ("KB9900002", {"waivers": [WAIVER]}, "2026-02-01"),
    "firewall_rule_groups": ("KB9900007", {"allow": {"firewall_rule_groups": ["@FirewallAPI.dll,-28752"]}}, None),
    "firewall_rules": ("KB9900006", {"allow": {"firewall_rules": ["FPS-ICMP4-ERQ-In"]}}, None),
    "services": ("KB9900002", {"allow": {"services": ["Spooler"]}}, None),
    "new_services": ("KB9900005", {"allow": {"new_services": ["PgUpdateHelper"]}}, None),
    "listening_ports": ("KB9900010", {"allow": {"listening_ports": [8080]}}, None),
    "kbs": ("KB5070881", {"allow": {"kbs": ["KB5070881"]}}, None),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    catalog = Catalog.load()
    root = tmp_path_factory.mktemp("policy")

    def one(name: str) -> tuple[str, Run]:
        kb, policy, today = SCENARIOS[name]
        behaviour = catalog.behaviour(kb)
        folder = root / name
        lab = cr.write_lab(folder, catalog, [IMAGE], name=f"policy-{name.replace('_', '-')}", policy=policy)
        candidate = cr.write_candidate(folder / "candidate", behaviour, cr.target_build(catalog, behaviour, [IMAGE]))
        # the expired waiver's closing lines are `patchgate validate`'s: that run goes through the CLI
        return name, cr.run_validate(lab, candidate, folder / "out", today=today, pycache=root / "pycache",
                                     cli=name in THROUGH_THE_CLI)

    names = list(SCENARIOS)
    results = dict([one(names[0])])
    with ThreadPoolExecutor(max_workers=3) as pool:
        results.update(pool.map(one, names[1:]))
    return results


def check(run: Run, invariant: str) -> dict[str, Any]:
    return next(c for c in run.checks(VM) if c["invariant"] == invariant)


def test_an_active_waiver_turns_the_block_into_an_approve(runs: dict[str, Run]) -> None:
    run = runs["waiver-active"]
    assert run.gate["verdict"] == "approve" and run.returncode == 0, run.explain(VM)
    waived = check(run, "services.configuration")
    assert waived["status"] == "waived" and "Spooler" in waived["message"], waived
    [applied] = run.gate["waivers_applied"]
    assert applied["vm"] == VM and applied["invariant"] == "services.configuration"
    assert applied["owner"] == WAIVER["owner"] and applied["expires"] == WAIVER["expires"]
    assert applied["justification"] == WAIVER["justification"]
    assert "waived" in run.gate["reason"]


def test_after_its_expiry_the_waiver_no_longer_applies_and_says_so(runs: dict[str, Run]) -> None:
    run = runs["waiver-expired"]
    assert run.gate["verdict"] == "block" and run.returncode == 1, run.explain(VM)
    failed = check(run, "services.configuration")
    assert failed["status"] == "failed"
    assert f"waiver by {WAIVER['owner']} expired on 2026-01-31 and no longer applies" in failed["message"]
    assert "Spooler" in failed["message"] and run.gate["waivers_applied"] == []
    assert [w["expires"] for w in run.gate["waivers_expired"]] == ["2026-01-31"]
    closing = run.output[run.output.rindex("verdict: BLOCK"):]
    assert (f"EXPIRED waiver for services.configuration on {VM} by {WAIVER['owner']}: expired on 2026-01-31, "
            "no longer applies") in closing, closing


# allowlist kind -> (the invariant it relaxes, words naming the allowed change in the passing check's message)
ALLOWED = {
    "firewall_rule_groups": ("firewall.rules", ("RemoteDesktop-UserMode-In-UDP", "enabled")),
    "firewall_rules": ("firewall.rules", ("FPS-ICMP4-ERQ-In", "(removed)")),
    "services": ("services.configuration", ("Spooler", "start_mode", "Manual")),
    "new_services": ("services.new_services", ("PgUpdateHelper",)),
    "listening_ports": ("firewall.listening_ports", ("TCP/8080", "(added)")),
    "kbs": ("hotpatch.track", ("KB5070881", "installed")),
}


@pytest.mark.parametrize("kind", sorted(ALLOWED))
def test_an_allowed_change_passes_but_stays_in_the_evidence(runs: dict[str, Run], kind: str) -> None:
    invariant, words = ALLOWED[kind]
    run = runs[kind]
    assert run.gate["verdict"] == "approve", run.explain(VM)
    passed = check(run, invariant)
    assert passed["status"] == "passed", passed
    assert passed["message"].startswith(f"{VM} (hotpatch-member): allowed by the lab policy"), passed["message"]
    for word in words:
        assert word in passed["message"], f"{kind}: {word!r} missing from\n{passed['message']}"
    evidence = Path(run.out_dir, "gate.json").read_text(encoding="utf-8")
    assert words[0] in evidence  # gate.json is part of the signed evidence
