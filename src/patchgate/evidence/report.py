"""``patchgate report DIR``: the single-file Allure 3 report and a one-page summary of a finished run.

Outputs, all *derived* from the evidence and never part of the evidence manifest (which may already be signed):

* ``DIR/report/index.html``: Allure 3 "awesome" report in one self-contained HTML file (opens from disk or a web
  server, no other files needed), built by the npm ``allure`` package that ``make report-tools`` installs.
* ``DIR/summary.html`` and ``DIR/summary.md``: verdict, candidate, lab, failed and broken invariants per VM with
  their messages, waivers applied, certificate checking, and links to the report.
* ``DIR/report-manifest.json``: sha256 of those files and of the evidence manifest they were built from, which
  ``patchgate verify`` checks too.

The report is regenerated rather than archived when in doubt: ``patchgate verify`` proves the evidence, and
``patchgate report`` turns the same evidence into the same verdict and test results.

Also here: the helpers the Allure wiring uses to render per-VM attachments (posture diffs, install output, event
excerpts), so the same texts can be produced outside pytest.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from patchgate.errors import ConfigError
from patchgate.secrets.redact import redactor

REPORT_FOLDER = "report"
ALLURE_TIMEOUT = 300
_ANALYTICS = re.compile(r'<script async src="https://www\.googletagmanager\.com/gtag/js\?id=[^"]*"></script>\s*'
                        r'<script>\s*window\.dataLayer[\s\S]*?</script>')
# the single-file report's application script (its code inline as a data: URL) and its embedded data's first line
_APP_SCRIPT = re.compile(r'<script\s+src="data:text/javascript;base64,')
_EMBEDDED_DATA = "window.allureReportData = window.allureReportData || {};"


# ------------------------------------------------------------------------------------------------ attachments

def posture_diffs(baseline: Any, post: Any) -> dict[str, Any]:
    """Keyed diffs of services, firewall rules, installed KBs and listening ports (areas both captures have)."""
    from patchgate.model.diff import diff_keyed
    from patchgate.model.posture import PORT_DIFF_FIELDS, RULE_DIFF_FIELDS, SERVICE_DIFF_FIELDS

    diffs: dict[str, Any] = {}
    if baseline.services is not None and post.services is not None:
        diffs["services"] = diff_keyed(baseline.services.services, post.services.services, SERVICE_DIFF_FIELDS)
    if baseline.firewall is not None and post.firewall is not None:
        diffs["firewall rules"] = diff_keyed(baseline.firewall.rules, post.firewall.rules, RULE_DIFF_FIELDS)
    if baseline.updates is not None and post.updates is not None:
        diffs["installed KBs"] = diff_keyed(baseline.updates.hotfixes, post.updates.hotfixes, ("description",))
    if baseline.ports is not None and post.ports is not None:
        diffs["listening ports"] = diff_keyed(baseline.ports.keyed(), post.ports.keyed(), PORT_DIFF_FIELDS)
    return diffs


def install_text(install: Any) -> str:
    head = [f"KB: {install.kb}", f"exit code: {install.exit_code}", f"restart needed: {install.restart_needed}",
            f"started: {install.started_at.isoformat()}", f"finished: {install.finished_at.isoformat()}", ""]
    return redactor.redact("\n".join(head + [str(line) for line in install.output]) + "\n")


def event_excerpt(posture: Any, limit: int = 200) -> str:
    """The events the post-update capture collected (SCM failures, servicing, WSUS), newest last, as a table."""
    events = getattr(posture, "events", None)
    if events is None:
        return ""
    since = events.since.isoformat() if events.since else "the baseline"
    if not events.events:
        return f"no matching events since {since}\n"
    from patchgate.model.diff import render_table

    rows = [(e.time_created.isoformat() if e.time_created else "", e.log_name, e.provider_name, str(e.id),
             e.level or "", (e.message or "").replace("\n", " ")[:160]) for e in events.events[-limit:]]
    table = render_table(rows, headers=("time", "log", "provider", "id", "level", "message"), max_rows=limit)
    return redactor.redact(f"events since {since} ({len(events.events)}):\n{table}\n")


# ------------------------------------------------------------------------------------------------ allure

def find_allure(root: Path | None = None) -> Path:
    """The Allure 3 CLI: $PATCHGATE_ALLURE, else the one ``npm install`` put in ``root`` (default: the working
    directory), else ``allure`` on the PATH."""
    from patchgate.environment import environment

    path = environment().allure
    if path is not None:
        if not path.is_file():
            raise ConfigError("PATCHGATE_ALLURE does not name a file", file=str(path))
        return path
    root = Path.cwd() if root is None else root
    on_path = shutil.which("allure")
    candidates = [root / "node_modules" / ".bin" / "allure", *([Path(on_path)] if on_path else [])]
    for path in candidates:
        if path.is_file():
            if shutil.which("node") is None:
                raise ConfigError("Allure 3 needs Node.js: install it (Debian: apt-get install nodejs npm)")
            return path
    where = str(root)
    raise ConfigError(f"Allure 3 is not installed: run 'npm install' in {where} (or 'make report-tools'); "
                      "it installs the npm 'allure' package pinned in package.json")


def allure_categories(source: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Translate Allure 2 categories.json rules (kept in reports/categories.json) into Allure 3 config rules."""
    rules = []
    for index, rule in enumerate(source):
        matcher: dict[str, Any] = {}
        if rule.get("matchedStatuses"):
            matcher["statuses"] = list(rule["matchedStatuses"])
        if rule.get("messageRegex"):
            matcher["message"] = rule["messageRegex"]
        if rule.get("traceRegex"):
            matcher["trace"] = rule["traceRegex"]
        if not matcher:
            continue
        rules.append({"id": f"patchgate-{index}", "name": rule["name"], "matchers": [matcher],
                      "groupBy": ["severity"] if matcher.get("statuses") == ["failed"] else [],
                      "expand": index == 0})
    return rules


def _read_categories(run_dir: Path) -> list[dict[str, Any]]:
    for path in (run_dir / "allure-results" / "categories.json",):
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, list):
                    return data
            except ValueError:
                pass
    return []


def build_allure_report(run_dir: Path, gate: dict[str, Any], *, allure: Path | None = None) -> Path:
    """Run ``allure generate`` (the awesome plugin, one file) into ``run_dir/report``; return its index.html.

    The verdict is the first thing the report shows, whatever the pass rate: it is in the report's name, it is
    the first of the report's variables (above the metadata), a block or inconclusive verdict is a global error
    (the red *Global Errors* tab), and the test tree lists failed and broken checks first. The global error lives in
    a results folder of its own, outside the run folder: the report is derived, the evidence stays as written.
    """
    allure = allure or find_allure()
    results = run_dir / "allure-results"
    output = run_dir / REPORT_FOLDER
    if output.exists():
        shutil.rmtree(output)
    partial = " (partial)" if gate.get("partial") else ""
    name = f"patchgate {gate['candidate']['kb']} on {gate['lab']['name']}: {gate['verdict'].upper()}{partial}"
    with tempfile.TemporaryDirectory(prefix="patchgate-allure-") as work:
        # a private working directory: no allurerc.* or history from wherever the command was started
        config = Path(work) / "allurerc.json"
        config.write_text(json.dumps(allure_config(run_dir, gate, name), indent=2), encoding="utf-8")
        verdict_results = write_verdict_globals(Path(work) / "verdict-results", gate)
        command = [str(allure), "generate", str(results.resolve()), str(verdict_results), "--config", str(config),
                   "--cwd", work, "-o", str(output.resolve()), "--report-name", name]
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        try:
            done = subprocess.run(command, check=False, cwd=work, capture_output=True, text=True, timeout=ALLURE_TIMEOUT,
                                  env=env)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"allure generate did not finish within {ALLURE_TIMEOUT}s") from None
    index = output / "index.html"
    if done.returncode != 0 or not index.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"allure generate failed (exit {done.returncode}):\n{redactor.redact(tail)}")
    index.write_text(declare_embedded_data(strip_analytics(index.read_text(encoding="utf-8"))), encoding="utf-8")
    return index


def allure_config(run_dir: Path, gate: dict[str, Any], name: str) -> dict[str, Any]:
    """Allure 3's configuration for one run (https://allurereport.org/docs/v3/configure/ and the awesome plugin's
    README: ``singleFile``, ``groupBy``, ``defaultSortBy``)."""
    return {"name": name, "variables": report_variables(run_dir, gate),
            "categories": {"rules": allure_categories(_read_categories(run_dir))},
            "plugins": {"awesome": {"options": {"reportName": name, "singleFile": True,
                                                "groupBy": ["parentSuite", "suite", "subSuite"],
                                                "defaultSortBy": "status,asc"}}}}


def write_verdict_globals(folder: Path, gate: dict[str, Any]) -> Path:
    """A results folder holding one Allure ``*-globals.json`` whose error is the verdict, unless it approves."""
    import time
    import uuid

    folder.mkdir(parents=True, exist_ok=True)
    if gate["verdict"] != "approve":
        errors = [{"message": redactor.redact(f"patchgate verdict: {gate['verdict'].upper()}: {gate.get('reason', '')}"),
                   "timestamp": int(time.time() * 1000)}]
        (folder / f"{uuid.uuid4()}-globals.json").write_text(json.dumps({"errors": errors}), encoding="utf-8")
    return folder


def report_variables(run_dir: Path, gate: dict[str, Any]) -> dict[str, str]:
    """What Allure 3 shows above the overview (its report ``variables``): the verdict and the signature first."""
    from patchgate.evidence.signing_status import signing_status

    return {"Verdict": gate["verdict"].upper() + (" (partial)" if gate.get("partial") else ""),
            "Reason": gate.get("reason", ""), "Signature": signing_status(run_dir).text,
            "Selection": selection_text(gate)}


def selection_text(gate: dict[str, Any]) -> str:
    """What part of the lab and the suites the run checked, in words."""
    selection = gate.get("selection") or {}
    return f"partial: {selection.get('narrowed_by')}" if gate.get("partial") else "the whole lab, every suite"


def strip_analytics(page: str) -> str:
    """Remove the Google Analytics tag Allure 3 always adds: an evidence report must open offline and must not
    tell a third party that (or when) it was opened."""
    return _ANALYTICS.sub("", page)


def declare_embedded_data(page: str) -> str:
    """Tell the report's application, before it starts, that its data is embedded in the page.

    Allure 3's single file puts the application script before the (megabytes of) embedded data, and the
    application decides per request whether data is embedded by looking for ``window.allureReportData``. When
    the page arrives slowly (an artifact server, a VPN), the application starts before the data script has been
    parsed, asks the server for ``data/test-results/<id>.json``, which a single file does not have, and shows
    "Failed to fetch ... 404" instead of the check. Declared first, every request waits for the embedded data
    (``allureReportDataReady``) instead. A page whose layout is not the one this was written for is an error:
    a report that silently fails to open is worse than none.
    """
    app = _APP_SCRIPT.search(page)
    at = app.start() if app else len(page)
    if _EMBEDDED_DATA not in page[at:]:
        raise RuntimeError("allure generate wrote a single-file report of an unknown layout (no application "
                           "script followed by embedded data): the report could not open its own data")
    return f"{page[:at]}<script>{_EMBEDDED_DATA}</script>\n    {page[at:]}"


# ------------------------------------------------------------------------------------------------ summary

def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def summary_data(gate: dict[str, Any], run_manifest: dict[str, Any] | None, *,
                 signature: str = "unknown") -> dict[str, Any]:
    """What the one-page summary shows, in one structure both renderings use; ``signature``: the run folder's
    signing status (patchgate.evidence.signing_status)."""
    by_vm: dict[str, list[dict[str, Any]]] = {}
    for check in gate.get("checks", []):
        if check.get("status") in ("failed", "broken"):
            by_vm.setdefault(check.get("vm", ""), []).append(check)
    counts = gate.get("counts", {})
    return {"verdict": gate["verdict"], "reason": gate.get("reason", ""), "candidate": gate["candidate"],
            "lab": gate["lab"], "run_id": gate.get("run_id"), "started_at": gate.get("started_at"),
            "finished_at": gate.get("finished_at"), "counts": counts, "by_vm": dict(sorted(by_vm.items())),
            "waivers": gate.get("waivers_applied", []), "cert_validation": gate.get("cert_validation", {}),
            "remoting": gate.get("remoting", {}), "interrupted": gate.get("interrupted", False),
            "commit": ((run_manifest or {}).get("patchgate", {}).get("git") or {}).get("commit"),
            "version": gate.get("patchgate_version"), "signature": signature, "selection": selection_text(gate)}


def _noise_text(lab: dict[str, Any]) -> str:
    """The twin's noise, with the seed that reproduces it (`patchgate validate --seed N`)."""
    if not lab.get("noise"):
        return ""
    return f", noise {lab['noise']}" + (f" seed {lab['seed']}" if lab.get("seed") is not None else "")


def render_markdown(data: dict[str, Any], report_href: str | None) -> str:
    c = data["candidate"]
    lines = [f"# patchgate: {data['verdict'].upper()} for {c['kb']} on lab {data['lab']['name']}", "",
             f"**Verdict:** {data['verdict'].upper()}: {data['reason']}", "",
             f"- Signature: {data.get('signature', 'unknown')}",
             f"- Selection: {data['selection']}",
             f"- Candidate: {c['kb']} ({c.get('classification', '')}): {c.get('title', '')}",
             (f"- Lab: {data['lab']['name']} ({data['lab'].get('hypervisor', '')}, remoting "
             f"{data['remoting'].get('kind', '')}{_noise_text(data['lab'])})"),
             f"- Run: {data['run_id']} ({data['started_at']} to {data['finished_at']})",
             "- Checks: " + ", ".join(f"{v} {k}" for k, v in sorted(data["counts"].items())),
             "- Certificate checking: " + ", ".join(f"{k} {'on' if v else 'OFF'}"
                                                    for k, v in data["cert_validation"].items())]
    if report_href:
        lines.append(f"- Full report: [{report_href}]({report_href})")
    lines += ["", "## Failed and broken invariants per VM", ""]
    if not data["by_vm"]:
        lines.append("None.")
    for vm, checks in data["by_vm"].items():
        lines.append(f"### {vm} ({checks[0].get('role', '')})")
        lines.append("")
        for check in checks:
            lines.append(f"- **{check['status'].upper()}** `{check['invariant']}`: "
                         f"{_first_line(check.get('message', ''))}")
            body = (check.get("message") or "").strip().splitlines()[1:]
            if body:
                lines += ["", "  ```", *[f"  {b}" for b in body], "  ```"]
        lines.append("")
    lines += ["## Waivers applied", ""]
    for waiver in data["waivers"]:
        lines.append(f"- `{waiver['invariant']}` on {waiver['vm']}: {_first_line(waiver.get('waiver', ''))}")
        body = (waiver.get("waiver") or "").strip().splitlines()[1:]  # the failure the waiver covers
        if body:
            lines += ["", "  ```", *[f"  {b}" for b in body], "  ```"]
    if not data["waivers"]:
        lines.append("None.")
    return redactor.redact("\n".join(lines) + "\n")


_CSS = ("body{font-family:Segoe UI,Arial,sans-serif;max-width:1100px;margin:24px auto;color:#222}"
        ".verdict{font-size:28px;font-weight:bold;padding:10px 16px;border-radius:6px;display:inline-block}"
        ".block{background:#fde2e1;color:#a4000f}.approve{background:#dff5e3;color:#11632a}"
        ".inconclusive{background:#fff3cd;color:#7a5a00}table{border-collapse:collapse;margin:8px 0}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}"
        "pre{background:#f7f7f7;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere;margin:0}"
        "td,p{overflow-wrap:break-word}table{max-width:100%}.off{color:#a4000f;font-weight:bold}")


def render_html(data: dict[str, Any], report_href: str | None) -> str:
    e = html.escape
    c = data["candidate"]
    verdict = data["verdict"]
    parts = [(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>patchgate {e(verdict.upper())} "
             f"{e(c['kb'])}</title><style>{_CSS}</style></head><body>"),
             f"<h1>{e(c['kb'])} on lab {e(data['lab']['name'])}</h1>",
             f"<div class=\"verdict {e(verdict)}\" id=\"verdict\">{e(verdict.upper())}</div>",
             f"<p>{e(data['reason'])}</p><table>"]
    cves = ", ".join(f"<a href=\"https://www.cve.org/CVERecord?id={e(x)}\">{e(x)}</a>" for x in c.get("cves", []))
    rows = [("Signature", e(data.get("signature", "unknown"))), ("Selection", e(data["selection"])),
            ("Candidate", f"{e(c['kb'])} ({e(c.get('classification', ''))}): {e(c.get('title', ''))}"),
            ("KB article", f"<a href=\"{e(c.get('kb_article', ''))}\">{e(c.get('kb_article', ''))}</a>"),
            ("CVEs", cves or "-"), ("Target build", e(c.get("target_build", ""))),
            ("Lab", (f"{e(data['lab']['name'])} ({e(data['lab'].get('hypervisor', ''))}, remoting "
                    f"{e(data['remoting'].get('kind', ''))})")),
            ("Run", f"{e(str(data['run_id']))}: {e(str(data['started_at']))} to {e(str(data['finished_at']))}"),
            ("Checks", e(", ".join(f"{v} {k}" for k, v in sorted(data["counts"].items())))),
            ("Certificate checking", ", ".join(
                f"{e(k)} " + ("on" if v else "<span class=\"off\">OFF</span>")
                for k, v in data["cert_validation"].items()) or "unknown"),
            ("patchgate", e(f"{data['version']} {data['commit'] or ''}".strip()))]
    if report_href:
        rows.append(("Full report", f"<a href=\"{e(report_href)}\">{e(report_href)}</a>"))
    if data["interrupted"]:
        rows.append(("Interrupted", "yes: the run stopped before every check finished"))
    parts += [f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows]
    parts.append("</table><h2>Failed and broken invariants per VM</h2>")
    if not data["by_vm"]:
        parts.append("<p>None.</p>")
    for vm, checks in data["by_vm"].items():
        parts.append(f"<h3>{e(vm)} ({e(checks[0].get('role', ''))})</h3><table><tr><th>status</th>"
                     "<th>invariant</th><th>message</th></tr>")
        for check in checks:
            parts.append(f"<tr><td>{e(check['status'].upper())}</td><td>{e(check['invariant'])}</td>"
                         f"<td><pre>{e(check.get('message', ''))}</pre></td></tr>")
        parts.append("</table>")
    parts.append("<h2>Waivers applied</h2>")
    if data["waivers"]:
        parts.append("<table><tr><th>VM</th><th>invariant</th><th>waiver</th></tr>")
        parts += [f"<tr><td>{e(w['vm'])}</td><td>{e(w['invariant'])}</td><td><pre>{e(w.get('waiver', ''))}</pre></td></tr>"
                  for w in data["waivers"]]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<p><small>Generated {e(dt.datetime.now(dt.UTC).isoformat(timespec='seconds'))} "
                 "by patchgate report. Check the evidence with <code>patchgate verify</code>.</small></p>")
    parts.append("</body></html>")
    return redactor.redact("".join(parts))


# ------------------------------------------------------------------------------------------------ command

def _load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    gate_file = run_dir / "gate.json"
    if not run_dir.is_dir():
        raise ConfigError("not a folder", file=str(run_dir))
    if not gate_file.is_file() or not (run_dir / "allure-results").is_dir():
        raise ConfigError("not a patchgate run folder (needs gate.json and allure-results/)", file=str(run_dir))
    from patchgate.evidence.gate import read_gate

    try:
        gate = read_gate(gate_file)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"not a valid gate file: {exc}", file=str(gate_file)) from None
    manifest_file = run_dir / "run-manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else None
    return gate, manifest


def write_summary(run_dir: Path, gate: dict[str, Any], manifest: dict[str, Any] | None,
                  report_href: str | None) -> list[Path]:
    from patchgate.evidence.signing_status import signing_status

    data = summary_data(gate, manifest, signature=signing_status(run_dir).text)
    md, page = run_dir / "summary.md", run_dir / "summary.html"
    md.write_text(render_markdown(data, report_href), encoding="utf-8")
    page.write_text(render_html(data, report_href), encoding="utf-8")
    return [page, md]


def write_report_manifest(run_dir: Path, files: list[Path]) -> Path:
    from patchgate.evidence.manifests import EVIDENCE_MANIFEST, REPORT_MANIFEST, REPORT_SCHEMA, sha256_file

    evidence = run_dir / EVIDENCE_MANIFEST
    data = {"schema": REPORT_SCHEMA, "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "evidence_manifest_sha256": sha256_file(evidence) if evidence.is_file() else None,
            "files": [{"path": f.relative_to(run_dir).as_posix(), "sha256": sha256_file(f),
                       "size": f.stat().st_size} for f in files]}
    path = run_dir / REPORT_MANIFEST
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def generate(run_dir: Path) -> dict[str, Path]:
    """Build report/index.html, summary.html, summary.md and report-manifest.json for a finished run."""
    run_dir = Path(run_dir)
    gate, manifest = _load_run(run_dir)
    # the summary needs no Allure: write it first, so a runner without Node.js still gets the one-page verdict
    summary = write_summary(run_dir, gate, manifest, f"{REPORT_FOLDER}/index.html")
    index = build_allure_report(run_dir, gate, allure=find_allure())
    written = {"report": index, "summary_html": summary[0], "summary_md": summary[1]}
    written["manifest"] = write_report_manifest(run_dir, [index, *summary])
    return written
