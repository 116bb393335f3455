"""Fast checks of the evidence and report helpers, without a lab run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from patchgate_pytest.allure_wiring import executor_from_env, render_properties
from patchgate.errors import ConfigError
from patchgate.evidence.manifests import EVIDENCE_MANIFEST, build_evidence_manifest, is_derived, verify_dir
from patchgate.evidence.report import (allure_categories, declare_embedded_data, render_html, render_markdown,
                                      strip_analytics, summary_data)
from patchgate.secrets.redact import redactor
from report.runs import ROOT


def make_run(folder: Path) -> Path:
    (folder / "allure-results").mkdir(parents=True)
    (folder / "vms").mkdir()
    check = {"vm": "vm1", "area": "services", "invariant": "services.configuration", "status": "failed"}
    (folder / "gate.json").write_text(json.dumps({"verdict": "block", "exit_code": 1, "checks": [check]}))
    (folder / "allure-results" / "a-result.json").write_text("{}")
    (folder / "allure-results" / "b-attachment.txt").write_text("install output\n")
    (folder / "vms" / "vm1.json").write_text("{}")
    manifest = build_evidence_manifest(folder, "run-1")
    (folder / EVIDENCE_MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_verify_names_changed_missing_and_extra(tmp_path):
    run = make_run(tmp_path / "run")
    assert verify_dir(run).ok
    (run / "allure-results" / "b-attachment.txt").write_text("install output!\n")
    (run / "vms" / "vm1.json").unlink()
    (run / "allure-results" / "c-result.json").write_text("{}")
    result = verify_dir(run)
    assert result.changed == ["allure-results/b-attachment.txt"]
    assert result.missing == ["vms/vm1.json"]
    assert result.extra == ["allure-results/c-result.json"]


def test_derived_files_are_not_extra(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("<html></html>")
    for name in ("summary.html", "summary.md"):
        (run / name).write_text("x")
    assert verify_dir(run).ok
    for name in ("gate.json.sig", "evidence-manifest.json.sig", "patchgate-verdicts.v1.pub.pem", "report/x.js"):
        assert is_derived(name), name
    for name in ("gate.json", "junit.xml", "allure-results/x-result.json", "forged.txt"):
        assert not is_derived(name), name


def test_manifest_entry_outside_the_folder_is_a_problem(tmp_path):
    run = make_run(tmp_path / "run")
    manifest = json.loads((run / EVIDENCE_MANIFEST).read_text())
    manifest["files"].append({"path": "../outside.txt", "sha256": "0" * 64, "size": 1})
    (run / EVIDENCE_MANIFEST).write_text(json.dumps(manifest))
    assert any("leaves the run folder" in p for p in verify_dir(run).problems)


def test_no_manifest_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="evidence-manifest.json"):
        verify_dir(tmp_path)


def test_executor_from_github_and_gitlab_variables():
    github = executor_from_env({"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "99", "GITHUB_RUN_NUMBER": "7",
                                "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
                                "GITHUB_WORKFLOW": "nightly"})
    assert github["type"] == "github" and github["buildUrl"] == "https://github.com/o/r/actions/runs/99"
    assert github["buildOrder"] == 7
    gitlab = executor_from_env({"GITLAB_CI": "true", "CI_PIPELINE_ID": "1234", "CI_PIPELINE_IID": "56",
                                "CI_PROJECT_URL": "https://gitlab.example/o/r", "CI_JOB_URL": "https://gitlab.example/o/r/-/jobs/9"})
    assert gitlab["type"] == "gitlab" and gitlab["buildOrder"] == 56 and gitlab["buildUrl"].endswith("/jobs/9")
    assert executor_from_env({"PATH": "/usr/bin"}) is None


def test_environment_properties_escape_separators():
    text = render_properties({"candidate.title": "a=b: c\nd"})
    assert text == "candidate.title=a\\=b\\: c\\nd\n"


def test_categories_translate_to_allure3_rules_with_portable_regexes():
    source = json.loads((ROOT / "reports" / "categories.json").read_text())
    rules = allure_categories(source)
    assert len(rules) == len(source)
    for rule in rules:
        for matcher in rule["matchers"]:
            for key in ("message", "trace"):
                if key in matcher:
                    assert "(?" not in matcher[key]  # inline flags: Java accepts them, JavaScript does not
                    re.compile(matcher[key])
    waived = next(r for r in rules if r["name"].startswith("Waived"))
    assert re.match(waived["matchers"][0]["message"], "XFAIL waived by jdoe until 2026-01-31: reason\n\nFailed")
    hotpatch = next(r for r in rules if r["name"].startswith("Hotpatch"))
    assert re.fullmatch(hotpatch["matchers"][0]["trace"], "suites/test_hotpatch.py:86: in test_x\n    assert")


def test_analytics_tag_is_removed():
    page = ('<body><div id="app"></div>\n    <script async src="https://www.googletagmanager.com/gtag/js?id=G-X">'
            '</script>\n    <script>\n        window.dataLayer = window.dataLayer || [];\n        gtag("js");\n'
            '    </script>\n    <script>window.data=1</script></body>')
    cleaned = strip_analytics(page)
    assert "googletagmanager" not in cleaned and "dataLayer" not in cleaned
    assert "<script>window.data=1</script>" in cleaned


SINGLE_FILE = ('<body><div id="app"></div>\n    <script>\n      window.allure = window.allure || {};\n    </script>\n'
               '    <script   src="data:text/javascript;base64,QQ=="></script>\n    <script async>\n'
               '      window.allureReportDataReady = false;\n'
               '      window.allureReportData = window.allureReportData || {};\n    </script></body>')


def test_embedded_data_is_declared_before_the_application_starts():
    page = declare_embedded_data(SINGLE_FILE)
    declared = page.index("<script>window.allureReportData = window.allureReportData || {};</script>")
    assert declared < page.index('src="data:text/javascript') < page.index("window.allureReportDataReady = false")
    assert page.replace("<script>window.allureReportData = window.allureReportData || {};</script>\n    ", "") \
        == SINGLE_FILE


@pytest.mark.parametrize("layout", [SINGLE_FILE.replace("data:text/javascript", "app.js"),
                                    SINGLE_FILE.replace("window.allureReportData = window", "window.data = window")])
def test_a_single_file_of_unknown_layout_is_an_error(layout):
    with pytest.raises(RuntimeError, match="unknown layout"):
        declare_embedded_data(layout)


def gate_doc(message: str) -> dict:
    return {"verdict": "block", "reason": "1 invariant(s) failed", "run_id": "r1",
            "candidate": {"kb": "KB5070881", "title": "t", "cves": ["CVE-2025-59287"], "kb_article": "https://x"},
            "lab": {"name": "twin", "hypervisor": "twin"}, "counts": {"failed": 1}, "remoting": {"kind": "psrp"},
            "cert_validation": {"remoting": False}, "waivers_applied": [],
            "checks": [{"vm": "vm1", "role": "member", "invariant": "services.configuration", "status": "failed",
                        "message": message}]}


def test_summary_escapes_messages_and_redacts_secrets():
    redactor.register("S3cr3t-Pa55word!")
    data = summary_data(gate_doc("vm1 (member): <script>alert(1)</script> password S3cr3t-Pa55word!"), None)
    page = render_html(data, "report/index.html")
    md = render_markdown(data, "report/index.html")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "S3cr3t-Pa55word!" not in page and "S3cr3t-Pa55word!" not in md
    assert "services.configuration" in md and "### vm1 (member)" in md


def test_summary_shows_the_failure_a_waiver_covers():
    waiver = "waived by jdoe until 2030-01-31: accepted\nvm1 (member): changed\n  KB  before  after\n  KB1  no  yes"
    gate = gate_doc("unused")
    gate["waivers_applied"] = [{"vm": "vm1", "invariant": "hotpatch.track", "waiver": waiver}]
    data = summary_data(gate, None)
    assert "<pre>waived by jdoe until 2030-01-31: accepted\nvm1 (member): changed\n  KB  before  after" in \
        render_html(data, None)
    assert "  KB1  no  yes" in render_markdown(data, None)


def test_signing_status_names_the_key_or_says_what_is_missing(tmp_path):
    from patchgate.evidence.signing_status import signing_status

    assert signing_status(tmp_path).state == "unsigned"
    (tmp_path / "run-manifest.json").write_text(json.dumps(
        {"signing": {"required": True, "key": "patchgate-verdicts", "mount": "transit"}}))
    missing = signing_status(tmp_path)
    assert missing.state == "missing" and "transit/patchgate-verdicts" in missing.text
    for name in ("gate.json", "evidence-manifest.json"):
        (tmp_path / f"{name}.sig").write_text(json.dumps({"file": name, "key": "patchgate-verdicts",
                                                          "key_version": 2, "mount": "transit"}))
    signed = signing_status(tmp_path)
    assert signed.state == "signed" and "transit/patchgate-verdicts v2" in signed.text


def test_executor_and_ci_context_from_jenkins_and_azure_pipelines_variables():
    from patchgate.evidence.ci import ci_context

    jenkins_env = {"JENKINS_URL": "https://ci.example/", "BUILD_NUMBER": "42", "JOB_NAME": "patch-gate",
                   "BUILD_URL": "https://ci.example/job/patch-gate/42/"}
    jenkins = executor_from_env(jenkins_env)
    assert jenkins["type"] == "jenkins" and jenkins["buildOrder"] == 42
    assert jenkins["buildUrl"] == "https://ci.example/job/patch-gate/42/" and jenkins["buildName"] == "patch-gate #42"
    assert ci_context(jenkins_env)["actor"] is None  # Jenkins names no user without a plugin: never guessed
    assert ci_context({**jenkins_env, "BUILD_USER_ID": "jdoe"})["actor"] == "jdoe"
    azure_env = {"TF_BUILD": "True", "BUILD_BUILDID": "1234", "BUILD_BUILDNUMBER": "20261203.1",
                 "BUILD_DEFINITIONNAME": "nightly", "BUILD_REQUESTEDFOR": "Jane Doe",
                 "SYSTEM_COLLECTIONURI": "https://dev.azure.com/fabrikam/", "SYSTEM_TEAMPROJECT": "Patch Gate"}
    azure = executor_from_env(azure_env)
    assert azure["type"] == "azure" and azure["buildOrder"] == 1234
    assert azure["buildUrl"] == "https://dev.azure.com/fabrikam/Patch%20Gate/_build/results?buildId=1234"
    assert ci_context(azure_env)["actor"] == "Jane Doe"
    assert ci_context({"PATH": "/usr/bin"}) is None


def test_only_a_verdict_that_does_not_approve_becomes_an_allure_global_error(tmp_path):
    from patchgate.evidence.report import allure_config, write_verdict_globals

    block = {"verdict": "block", "reason": "1 invariant(s) failed: hotpatch.track on vm1", "candidate": {"kb": "KB1"},
             "lab": {"name": "lab"}}
    [globals_file] = write_verdict_globals(tmp_path / "block", block).glob("*-globals.json")
    [error] = json.loads(globals_file.read_text())["errors"]
    assert error["message"] == "patchgate verdict: BLOCK: 1 invariant(s) failed: hotpatch.track on vm1"
    assert not list(write_verdict_globals(tmp_path / "approve", {**block, "verdict": "approve"}).iterdir())
    config = allure_config(tmp_path, block, "name")
    assert list(config["variables"])[:2] == ["Verdict", "Reason"] and config["variables"]["Verdict"] == "BLOCK"
    assert config["plugins"]["awesome"]["options"]["defaultSortBy"] == "status,asc"


def test_summary_wraps_long_messages_instead_of_running_off_the_page():
    data = summary_data(gate_doc("vm1 (member): " + "x" * 400), None, signature="unsigned")
    page = render_html(data, None)
    style = page[page.index("<style>"):page.index("</style>")]
    assert "white-space:pre-wrap" in style and "overflow-wrap:anywhere" in style
    assert "overflow:auto" not in style  # a scrolling box hides the end of the message
    assert page.index("<th>Signature</th>") < page.index("<th>Selection</th>") < page.index("<th>Candidate</th>")
