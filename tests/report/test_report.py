"""`patchgate report`: one self-contained HTML report that a browser renders, plus a one-page summary."""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from patchgate.errors import ConfigError
from patchgate.evidence.report import find_allure
from report.runs import ROOT, Run, patchgate

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def reported(blocked_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the blocked run with its report built (the session's run stays as validate left it)."""
    if not (ROOT / "node_modules" / ".bin" / "allure").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("Allure 3 is not installed: run 'npm install' (make report-tools)")
        pytest.skip("Allure 3 is not installed: run 'npm install' (make report-tools)")
    out = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(blocked_run.out, out)
    proc = patchgate("report", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "report/index.html" in proc.stdout
    return out


def test_report_is_one_self_contained_html_file(reported):
    index = reported / "report" / "index.html"
    text = index.read_text(encoding="utf-8")
    assert index.stat().st_size > 100_000
    # nothing loaded from beside the file or from the network
    for src in re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=\"([^\"]+)\"", text):
        assert src.startswith(("data:", "#")), src


def test_summary_shows_verdict_and_failed_invariants_per_vm(reported):
    page = (reported / "summary.html").read_text(encoding="utf-8")
    md = (reported / "summary.md").read_text(encoding="utf-8")
    assert 'class="verdict block"' in page and "KB5070881" in page
    for vm in ("ws25-hp-01", "ws25-az-01", "ws25-wsus-01"):
        assert f"<h3>{vm} (" in page and f"### {vm} (" in md
    assert "hotpatch.track" in md and "FAILED" in md
    assert 'href="report/index.html"' in page
    assert "Certificate checking" in page and "remoting <span class=\"off\">OFF</span>" in page
    signature = "<tr><th>Signature</th><td>unsigned (the lab does not sign verdicts)</td></tr>"
    assert signature in page and page.index(signature) < page.index("<tr><th>Candidate</th>")
    assert "- Signature: unsigned (the lab does not sign verdicts)" in md


def test_report_keeps_the_evidence_verifiable(reported):
    proc = patchgate("verify", str(reported))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "report-manifest.json" in proc.stdout


def test_a_changed_report_fails_verify(reported, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(reported, copy)
    summary = copy / "summary.html"
    summary.write_text(summary.read_text(encoding="utf-8").replace("BLOCK", "APPROVE"), encoding="utf-8")
    proc = patchgate("verify", str(copy))
    assert proc.returncode == 1 and "CHANGED  summary.html" in proc.stdout


def test_report_on_a_folder_that_is_no_run_exits_4(tmp_path):
    proc = patchgate("report", str(tmp_path))
    assert proc.returncode == 4
    assert "not a patchgate run folder" in proc.stderr and str(tmp_path) in proc.stderr


def test_missing_allure_names_npm_install(tmp_path, monkeypatch):
    monkeypatch.delenv("PATCHGATE_ALLURE", raising=False)
    with pytest.raises(ConfigError, match="npm install"):
        find_allure(tmp_path)


# ------------------------------------------------------------------------------------------------ in a browser

@pytest.fixture
def served(reported: Path) -> Iterator[str]:
    """The run folder over HTTP on 127.0.0.1 (stdlib server in a thread), as a CI artifact server would."""
    yield from serve(reported, QuietHandler)


@pytest.fixture
def served_slowly(reported: Path) -> Iterator[str]:
    """The run folder from a slow artifact server: the report's embedded data arrives a second after its code."""
    yield from serve(reported, SlowDataHandler)


def serve(folder: Path, handler_class: type[SimpleHTTPRequestHandler]) -> Iterator[str]:
    handler = functools.partial(handler_class, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class SlowDataHandler(QuietHandler):
    """Sends index.html up to its embedded data, flushes, and sends the rest a second later (a network delay)."""

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        body = source.read()
        if not self.path.split("?")[0].endswith("/index.html"):
            outputfile.write(body)
            return
        cut = body.rindex(b"<script", 0, body.index(b"window.allureReportDataReady = false"))
        outputfile.write(body[:cut])
        outputfile.flush()
        time.sleep(1.0)
        outputfile.write(body[cut:])


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing (make system-deps installs Debian's chromium)")
        pytest.skip("/usr/bin/chromium is missing (make system-deps installs Debian's chromium)")
    command = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--window-size=1400,2000", "--virtual-time-budget=15000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def visible_text(dom: str) -> str:
    """The rendered page's text: without scripts and styles (the report embeds its data in script tags)."""
    dom = re.sub(r"<(script|style|template)\b[\s\S]*?</\1>", " ", dom, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def test_report_renders_the_blocked_candidate_and_failed_invariant_in_chromium(served, reported, tmp_path):
    url = f"{served}/report/index.html"
    shot = tmp_path / "report.png"
    proc = chromium(f"--screenshot={shot}", url, profile=tmp_path / "profile-shot")
    assert proc.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = visible_text(dom.stdout)
    assert "patchgate KB5070881 on twin: BLOCK" in text
    assert "hotpatch.track on ws25-hp-01" in text
    assert "Failed 3" in text
    assert "Signature unsigned (the lab does not sign verdicts)" in text, text[:3000]


def test_the_report_of_a_block_shows_the_verdict_first_and_failed_checks_first(served, reported, tmp_path):
    """The overview of a mostly green BLOCK: the verdict is the first variable and a global error, and the
    test tree starts each VM with its failed checks."""
    url = f"{served}/report/index.html"
    shot = tmp_path / "overview.png"
    assert chromium(f"--screenshot={shot}", url, profile=tmp_path / "p1").returncode == 0 and shot.is_file()
    text = visible_text(chromium("--dump-dom", url, profile=tmp_path / "p2").stdout)
    assert "Global Errors 1" in text, text[:3000]
    variables = text[text.index("Variables"):]
    assert variables.split()[2:4] == ["Verdict", "BLOCK"], variables[:200]
    assert text.index("hotpatch.track on ws25-wsus-01") < text.index("firewall.core_services on ws25-wsus-01")


def test_failed_test_page_shows_the_vm_lifecycle_and_category(served, reported, tmp_path):
    """The failed hotpatch invariant's own page: its category, severity and the VM's lifecycle setup fixture."""
    results = json.loads((reported / "report" / "test-results.json").read_text(encoding="utf-8"))["byId"]
    [test_id] = [k for k, v in results.items() if v["name"] == "hotpatch.track on ws25-hp-01"]
    url = f"{served}/report/index.html#{test_id}"
    shot = tmp_path / "failed-test.png"
    assert chromium(f"--screenshot={shot}", url, profile=tmp_path / "p1").returncode == 0 and shot.is_file()
    text = visible_text(chromium("--dump-dom", url, profile=tmp_path / "p2").stdout)
    assert "hotpatch.track on ws25-hp-01" in text and "Failed" in text
    assert "Category: Hotpatch regressions" in text
    assert "lifecycle of ws25-hp-01 (hotpatch-member)" in text
    assert "KB5070881 article" in text and "CVE-2025-59287" in text


def test_a_checks_attachments_tab_shows_its_result_not_a_placeholder(served, reported, tmp_path):
    """A passing check's Attachments tab: its own "check result", not Allure's raw key for an empty tab; and no
    numbered pytest tear-down ("lab_run::1") on its page."""
    results = json.loads((reported / "report" / "test-results.json").read_text(encoding="utf-8"))["byId"]
    [test_id] = [k for k, v in results.items() if v["name"] == "firewall.rules on ws25-hp-01"]
    tab = visible_text(chromium("--dump-dom", f"{served}/report/index.html#{test_id}/attachments",
                                profile=tmp_path / "p1").stdout)
    assert "Attachments 1" in tab and "check result text/plain" in tab, tab[:2000]
    assert "no-attachments-results" not in tab
    page = visible_text(chromium("--dump-dom", f"{served}/report/index.html#{test_id}",
                                 profile=tmp_path / "p2").stdout)
    assert "Tear down" in page and "lab_run (tear-down)" in page, page[:3000]
    assert not re.search(r"\w+::\d+\b", page) and "pytestconfig" not in page and "<lambda>" not in page


def test_a_deep_link_opens_its_check_when_the_report_arrives_slowly(served_slowly, reported, tmp_path):
    """The report's code arrives before its embedded data (a slow artifact server): a link straight to a check
    still shows the check, not "Failed to fetch .../data/test-results/<id>.json" from a file that is not there."""
    results = json.loads((reported / "report" / "test-results.json").read_text(encoding="utf-8"))["byId"]
    [test_id] = [k for k, v in results.items() if v["name"] == "firewall.rules on ws25-hp-01"]
    tab = visible_text(chromium("--dump-dom", f"{served_slowly}/report/index.html#{test_id}/attachments",
                                profile=tmp_path / "p1").stdout)
    assert "Failed to fetch" not in tab, tab[:2000]
    assert "firewall.rules on ws25-hp-01" in tab and "check result text/plain" in tab, tab[:2000]
