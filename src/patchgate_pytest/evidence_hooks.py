"""Evidence written around the run: one summary per VM (steps, snapshot, errors) and JUnit properties."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from patchgate.run.labrun import LabRun
from patchgate.secrets.redact import redactor


def record_run(config: pytest.Config, run: LabRun) -> None:
    """Write ``vms/<vm>.json`` for each VM of this process's run (workers under xdist each write theirs)."""
    from patchgate_pytest.state import run_state

    state = run_state(config)
    if state is None:
        return
    folder = state.out_dir / "vms"
    folder.mkdir(parents=True, exist_ok=True)
    cert = run.components.cert_validation if run.components else {}
    for name, lifecycle in run.lifecycles.items():
        obs = lifecycle.obs
        summary = {
            "name": name, "role": obs.vm.role, "ring": obs.vm.ring, "run_id": run.run_id,
            "snapshot": ({"name": obs.snapshot.name, "identifier": obs.snapshot.identifier}
                         if obs.snapshot else {"name": obs.vm.snapshot, "identifier": None}),
            "steps": [s.to_dict() for s in obs.steps],
            "error": redactor.redact(str(obs.error)) if obs.error else None,
            "failed_step": obs.failed_step,
            "restore_error": redactor.redact(str(obs.restore_error)) if obs.restore_error else None,
            "lease_lost": redactor.redact(obs.lease_lost) if obs.lease_lost else None,
            "restored": obs.restored, "kept": obs.kept, "rebooted": obs.rebooted,
            "endpoint": ({"address": obs.endpoint.address, "port": obs.endpoint.port,
                          "hostname": obs.endpoint.hostname} if obs.endpoint else None),
            "install": ({"kb": obs.install.kb, "exit_code": obs.install.exit_code,
                         "restart_needed": obs.install.restart_needed,
                         "packages": obs.install.packages} if obs.install else None),
            "wsus_sync": obs.wsus_sync,
            "wsus": obs.wsus,
            "cert_validation": cert,
            "remoting": {"kind": run.lab.remoting.kind, "counters": run.remoting_counters.get(name, {})},
        }
        if run.run_error and not obs.error:
            summary["error"] = redactor.redact(str(run.run_error))
        text = json.dumps(summary, indent=2, default=str)
        (folder / f"{name}.json").write_text(redactor.redact(text) + "\n", encoding="utf-8")
    if run.external_wsus is not None:  # docs/wsus.md: the approval on the WSUS outside the lab, and its undo
        worker = getattr(config, "workerinput", {}).get("workerid")  # under xdist: one file per worker
        text = json.dumps(run.external_wsus.to_dict(), indent=2, default=str)
        name = f"wsus-{worker}.json" if worker else "wsus.json"
        (state.out_dir / name).write_text(redactor.redact(text) + "\n", encoding="utf-8")


def after_gate(config: pytest.Config, state, report) -> None:
    """After gate.json: JUnit properties, then the run and evidence manifests (last: they hash everything)."""
    from patchgate_pytest.allure_writer import flush_results

    flush_results()  # every Allure file on disk before the folder is redacted and hashed
    junit_properties(config, state, report)
    write_manifests(config, state, report)


def write_manifests(config: pytest.Config, state, report) -> None:
    """run-manifest.json and evidence-manifest.json (patchgate.evidence.manifests), then the signing hook if the lab asks."""
    from patchgate_pytest.allure_writer import written_files
    from patchgate.evidence.manifests import RunFacts, sign_if_enabled, write_evidence

    facts = RunFacts(out_dir=state.out_dir, run_id=state.run_id, lab=state.lab, candidate=state.candidate,
                     lab_path=state.lab_path, candidate_path=state.candidate_path, started_at=state.started_at,
                     suites_root=config.rootpath, verdict=report.verdict,
                     selection=report.selection)
    try:
        write_evidence(facts, known=written_files())
        sign_if_enabled(state.out_dir, state.lab)
    except Exception as exc:  # noqa: BLE001 - say so loudly; the verdict in gate.json stands
        message = f"patchgate: evidence manifest or signature not written: {exc.__class__.__name__}: " \
                  f"{redactor.redact(str(exc))}"
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message)


def junit_properties(config: pytest.Config, state, report) -> None:
    """Carry the verdict and candidate into junit.xml as properties, for CI systems that only read JUnit."""
    xmlpath = getattr(config.option, "xmlpath", None)
    if not xmlpath or not Path(xmlpath).is_file():
        return
    path = Path(xmlpath)
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    values = {"patchgate.verdict": report.verdict, "patchgate.reason": report.reason,
              "patchgate.partial": str(bool(report.selection.get("partial"))).lower(),
              "patchgate.selection": report.selection.get("narrowed_by") or "everything",
              "patchgate.candidate": state.candidate.kb, "patchgate.lab": state.lab.name,
              "patchgate.run_id": state.run_id}
    for suite in suites:
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        for key, value in values.items():
            ET.SubElement(props, "property", name=key, value=redactor.redact(str(value)))
    tree.write(path, encoding="utf-8", xml_declaration=True)
