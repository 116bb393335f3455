"""Every Allure result of a run carries the labels and links auditors filter by; run metadata is written once."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import yaml

from report.runs import ROOT, Run

pytestmark = pytest.mark.slow

SEVERITIES = {"blocker", "critical", "normal", "minor", "trivial"}
OUR_LABELS = ("epic", "feature", "story", "parentSuite", "suite", "subSuite", "severity")


def labels(result: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for label in result.get("labels", []):
        out[label["name"]].append(label["value"])
    return out


def lab_roles() -> dict[str, str]:
    lab = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    return {vm["name"]: vm["role"] for vm in lab["vms"]}


def label_signature(run: Run) -> set[tuple]:
    """(test name, our labels) of every result: what must be the same with and without xdist."""
    return {(r["name"], tuple((name, tuple(sorted(labels(r)[name]))) for name in OUR_LABELS))
            for r in run.allure_results()}


@pytest.mark.parametrize("which", ["blocked_run", "approved_run"])
def test_every_result_has_the_invariant_labels(request, which):
    run: Run = request.getfixturevalue(which)
    gate = run.gate()
    results = run.allure_results()
    roles = lab_roles()
    assert len(results) == len(gate["checks"]) > 40
    for result in results:
        got = labels(result)
        for name in OUR_LABELS:
            assert len(got[name]) == 1, (result["name"], name, got[name])
        assert got["epic"] == [gate["candidate"]["kb"]]
        assert got["parentSuite"] == ["twin"]
        vm = got["suite"][0]
        assert vm in roles and got["subSuite"] == [roles[vm]]
        story = got["story"][0]
        assert got["feature"] == [story.split(".", 1)[0]]
        assert got["severity"][0] in SEVERITIES
        assert result["name"] == f"{story} on {vm}"
        urls = {link["url"] for link in result.get("links", [])}
        assert gate["candidate"]["kb_article"] in urls
        for cve in gate["candidate"]["cves"]:
            assert f"https://www.cve.org/CVERecord?id={cve}" in urls


def test_severity_follows_the_invariant(blocked_run):
    by_story = {labels(r)["story"][0]: labels(r)["severity"][0] for r in blocked_run.allure_results()}
    assert by_story["hotpatch.track"] == "blocker"  # @invariant("hotpatch.track", severity="blocker")
    assert by_story["hotpatch.build"] == "critical"


def test_failed_hotpatch_invariant_is_failed_in_allure(blocked_run):
    failed = {r["name"] for r in blocked_run.allure_results() if r["status"] == "failed"}
    gate_failed = {f"{c['invariant']} on {c['vm']}" for c in blocked_run.gate()["checks"] if c["status"] == "failed"}
    assert failed == gate_failed and "hotpatch.track on ws25-hp-01" in failed


def test_lifecycle_is_one_setup_fixture_per_vm_with_timed_steps_and_attachments(blocked_run):
    results = {r["uuid"]: r for r in blocked_run.allure_results()}
    lifecycles = [c for c in blocked_run.allure_containers() if c.get("name", "").startswith("lifecycle of ")]
    assert sorted(c["name"] for c in lifecycles) == sorted(f"lifecycle of {vm}" for vm in lab_roles())
    covered: set[str] = set()
    for container in lifecycles:
        vm = container["name"].removeprefix("lifecycle of ")
        assert container["children"], vm
        for child in container["children"]:
            assert labels(results[child])["suite"] == [vm]
        covered.update(container["children"])
        [before] = container["befores"]
        steps = [s["name"].split(":")[0] for s in before["steps"]]
        for expected in ("revert", "capture baseline", "install", "capture post", "restore"):
            assert expected in steps, (vm, steps)
        assert all(s["stop"] >= s["start"] for s in before["steps"])
        names = {a["name"]: a for a in before["attachments"]}
        for expected in ("baseline posture (JSON)", "post-update posture (JSON)", "posture diff (HTML)",
                         "install output", "event log excerpts (since baseline)"):
            assert expected in names, (vm, sorted(names))
            assert (blocked_run.results / names[expected]["source"]).is_file()
        baseline = json.loads((blocked_run.results / names["baseline posture (JSON)"]["source"]).read_text())
        assert baseline["vm"] == vm and baseline["hotpatch"] is not None
        diff = (blocked_run.results / names["posture diff (HTML)"]["source"]).read_text()
        assert "installed KBs" in diff and "KB5070881" in diff
    assert covered == set(results), "every test result is a child of its VM's lifecycle"


def test_environment_properties(blocked_run):
    text = (blocked_run.results / "environment.properties").read_text(encoding="utf-8")
    props = dict(line.split("=", 1) for line in text.splitlines() if line)
    candidate = yaml.safe_load((ROOT / "candidates" / "KB5070881.yaml").read_text(encoding="utf-8"))
    assert props["lab"] == "twin" and props["candidate"] == "KB5070881"
    assert props["package.sha256"] == candidate["packages"][0]["sha256"]
    assert props["remoting.kind"] == "psrp"
    for key in ("patchgate.version", "patchgate.commit", "pypsrp.version", "pyvmomi.version", "hvac.version"):
        assert props[key] and props[key] != "not installed", key
    gate_cert = blocked_run.gate()["cert_validation"]
    for part, on in gate_cert.items():
        assert props[f"cert.validation.{part}"] == ("on" if on else "OFF")
    assert not (blocked_run.results / "executor.json").exists()  # no CI variables in this run


def test_categories_are_copied_and_separate_areas_lab_trouble_and_waivers(blocked_run):
    copied = json.loads((blocked_run.results / "categories.json").read_text(encoding="utf-8"))
    assert copied == json.loads((ROOT / "reports" / "categories.json").read_text(encoding="utf-8"))
    names = [c["name"] for c in copied]
    assert any("Waived" in n for n in names) and any("Lab trouble" in n for n in names)
    for area in ("Hotpatch", "WSUS", "Service", "Firewall"):
        assert any(n.startswith(area) for n in names), area


def test_waived_failure_is_reported_as_waived(waived_run):
    gate = waived_run.gate()
    waived = [c for c in gate["checks"] if c["status"] == "waived"]
    assert [(c["vm"], c["invariant"]) for c in waived] == [("ws25-hp-01", "hotpatch.track")]
    [result] = [r for r in waived_run.allure_results() if r["name"] == "hotpatch.track on ws25-hp-01"]
    assert result["status"] == "skipped"
    assert result["statusDetails"]["message"].startswith("XFAIL waived by jdoe")


def test_xdist_results_are_as_complete_as_without(blocked_run, xdist_run):
    assert xdist_run.gate()["verdict"] == "block", xdist_run.proc.stdout[-3000:]
    assert label_signature(xdist_run) == label_signature(blocked_run)
    lifecycles = [c for c in xdist_run.allure_containers() if c.get("name", "").startswith("lifecycle of ")]
    children = {child for c in lifecycles for child in c["children"]}
    assert children == {r["uuid"] for r in xdist_run.allure_results()}
    # metadata is written once, by the controller
    assert (xdist_run.results / "environment.properties").is_file()
    executor = json.loads((xdist_run.results / "executor.json").read_text(encoding="utf-8"))
    assert executor["type"] == "github" and executor["buildOrder"] == 17
    assert executor["buildUrl"] == "https://github.example/infra/patchgate/actions/runs/4242"


def test_run_manifest_records_what_was_tested(blocked_run):
    manifest = json.loads((blocked_run.out / "run-manifest.json").read_text(encoding="utf-8"))
    assert manifest["patchgate"]["version"]
    assert manifest["lab"]["sha256"] and manifest["candidate"]["sha256"]
    [package] = manifest["candidate"]["packages"]
    assert package["declared_sha256"] == package["actual_sha256"] and package["matches"] is True
    assert "hotpatch.ps1" in manifest["scripts"]["probes"] and manifest["scripts"]["remoting"]
    assert manifest["scripts"]["actions"]
    assert manifest["lab"]["staging"] == {"source": "harness", "address": "127.0.0.1"}  # the VMs pulled the package
    vms = {vm["name"]: vm for vm in manifest["vms"]}
    assert set(vms) == set(lab_roles())
    for vm in vms.values():
        assert vm["snapshot"]["identifier"]
        assert any(step["name"] == "install" and step["duration_s"] >= 0 for step in vm["steps"])
    assert manifest["cert_validation"] == blocked_run.gate()["cert_validation"]
    assert manifest["verdict"] == "block"


def test_a_waived_failure_keeps_its_before_and_after_table_everywhere(waived_run):
    """The waiver line once, then the failure message with its table: in gate.json, junit.xml and Allure."""
    import xml.etree.ElementTree as ET

    [check] = [c for c in waived_run.gate()["checks"] if c["status"] == "waived"]
    lines = check["message"].splitlines()
    assert lines[0].startswith("waived by jdoe until 2030-01-31: accepted until")
    assert sum(line.startswith("waived by") for line in lines) == 1, check["message"]
    table = "\n".join(lines[1:])
    assert "before" in table and "after" in table and "KB5070881" in table, check["message"]
    [skipped] = [s for case in ET.parse(waived_run.out / "junit.xml").getroot().iter("testcase")
                 if "hotpatch_track" in case.get("name", "") or "track" in case.get("name", "")
                 for s in case.iter("skipped")]
    assert table.splitlines()[0] in skipped.get("message", ""), skipped.attrib
    [result] = [r for r in waived_run.allure_results() if r["name"] == "hotpatch.track on ws25-hp-01"]
    assert table.splitlines()[0] in result["statusDetails"]["message"]


def test_the_run_manifest_says_who_ran_it_and_from_which_commits(xdist_run):
    import getpass

    manifest = json.loads((xdist_run.out / "run-manifest.json").read_text(encoding="utf-8"))
    runner = manifest["runner"]
    assert runner["user"] == getpass.getuser()
    assert runner["ci"] == {"system": "github", "actor": "jdoe-ci", "build": "nightly gate #17",
                            "run_url": "https://github.example/infra/patchgate/actions/runs/4242"}
    assert len(manifest["suites"]["git"]["commit"]) == 40 and manifest["suites"]["folder"].endswith("suites")
    assert manifest["lab"]["git"]["commit"] == manifest["suites"]["git"]["commit"]  # labs/twin.yaml is in the checkout
    assert manifest["lab"]["git"]["untracked"] is False


def test_no_pytest_internals_in_set_up_and_tear_down(blocked_run):
    fixtures = {f["name"] for c in blocked_run.allure_containers() for f in c.get("befores", []) + c.get("afters", [])}
    assert "pytestconfig" not in fixtures and not any(name.endswith("::<lambda>") for name in fixtures), fixtures
    assert not [name for name in fixtures if name.partition("::")[2].isdigit()], fixtures  # allure's numbering
    assert "lifecycle of ws25-hp-01 (hotpatch-member)" in fixtures and "obs" in fixtures


def test_every_check_has_its_own_result_attachment(blocked_run):
    """The Attachments tab of every check holds its own evidence (never Allure's placeholder for an empty tab)."""
    results = blocked_run.allure_results()
    texts = {}
    for result in results:
        [attachment] = [a for a in result.get("attachments", []) if a["name"] == "check result"]
        texts[result["name"]] = (blocked_run.results / attachment["source"]).read_text(encoding="utf-8")
    assert len(texts) == len(results) > 60
    failed = texts["hotpatch.track on ws25-hp-01"]
    assert failed.startswith("hotpatch.track on ws25-hp-01: failed\n") and "KB5070881" in failed
    assert "before" in failed and "after" in failed and "\nassert " not in failed
    assert texts["firewall.rules on ws25-hp-01"].startswith("firewall.rules on ws25-hp-01: passed\n")
    skipped = [t for name, t in texts.items() if ": not judged (skipped)" in t.splitlines()[0]]
    assert skipped and all(len(t.strip().splitlines()) > 1 for t in skipped)  # with the reason


def test_the_posture_diff_says_what_changed_at_its_top(blocked_run):
    [diff] = [p for p in blocked_run.results.glob("*-attachment.html")
              if "ws25-hp-01: baseline" in p.read_text(encoding="utf-8")]
    page = diff.read_text(encoding="utf-8")
    assert page.index('<p class="summary">') < page.index("installed KBs: 1 added") < page.index("<table>"), page[:600]
