"""Allure evidence for every invariant: labels, links, the VM's lifecycle as a setup fixture, run metadata.

Labels (set as markers at collection, so pytest-xdist workers carry them too): epic = candidate KB,
feature = area, story = invariant id, parentSuite = lab, suite = VM, subSuite = role, severity from
``@invariant(..., severity=)``; links to the KB article and each CVE.

The lifecycle of a VM is written ONCE per VM (per pytest process) as an Allure container whose single setup
fixture, "lifecycle of <vm> (<role>)", holds every lifecycle step with its real start and duration (revert, power
on, ready, captures, install, reboot, restore) and the VM's attachments: baseline and post posture JSON, an HTML
diff of services, firewall rules, KBs and ports, the install output and the event log excerpts. Every test of that
VM is a child of the container, so Allure shows the lifecycle in each test's *Set up* section while the steps and
attachments exist once on disk. A real pytest fixture cannot do that here: the VM is a function-level parameter,
so a fixture would be re-run (and re-written) per test, and restore only happens after the last test. The
container is therefore written when the session ends, with the complete timeline; the attachments it refers to
are written earlier: the baseline posture and the install output while the VM is still in the lab (the test loop
has nothing else to do then), the rest as soon as the VM's checks are done.

environment.properties, executor.json and categories.json are written once, by the controller.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from patchgate_pytest.invariants import INVARIANT
from patchgate_pytest.lab import VM_PARAM
from patchgate_pytest.state import RunState, run_state
from patchgate.jsontext import pretty_json
from patchgate.secrets.redact import redactor

log = logging.getLogger(__name__)

CVE_URL = "https://www.cve.org/CVERecord?id={}"
CHILDREN_KEY = pytest.StashKey[dict[str, list[str]]]()
ATTACHMENTS_KEY = pytest.StashKey[dict[str, list]]()  # VM -> posture attachments written when its checks ended
EARLY_KEY = pytest.StashKey[dict[str, dict[str, Any]]]()  # VM -> {"baseline"|"install": attachment written early}


def _allure_enabled(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None)) and \
        config.pluginmanager.get_plugin("allure_listener") is not None


def results_dir(config: pytest.Config) -> Path | None:
    value = getattr(config.option, "allure_report_dir", None)
    return Path(value) if value else None


# ------------------------------------------------------------------------------------------------ labels

def run_markers(state: RunState) -> list[pytest.MarkDecorator]:
    """The Allure labels and links every check of the run shares: the candidate and the lab."""
    import allure

    candidate = state.candidate
    marks = [allure.epic(candidate.kb), allure.parent_suite(state.lab.name),
             allure.link(str(candidate.references.kb_article), name=f"{candidate.kb} article")]
    return marks + [allure.link(CVE_URL.format(cve), name=cve) for cve in candidate.references.cves]


def vm_markers(vm: str, role: str, ring: str) -> list[pytest.MarkDecorator]:
    """The Allure labels of every check on one VM."""
    import allure

    return [allure.suite(vm), allure.sub_suite(role or "-"), allure.label("vm", vm), allure.label("role", role),
            allure.label("ring", ring)]


def check_markers(invariant_id: str, area: str, severity: str) -> list[pytest.MarkDecorator]:
    """The Allure labels of one invariant, whatever the VM."""
    import allure

    return [allure.feature(area), allure.story(invariant_id), allure.severity(allure.severity_level(severity)),
            allure.label("invariant", invariant_id)]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Label every check for Allure (markers, so pytest-xdist workers carry them too). The marks are built once
    per run, VM and invariant and shared by the checks, not rebuilt for each of hundreds of checks."""
    state = run_state(config)
    if state is None:
        return
    specs = {vm.name: vm for vm in state.lab.vms}
    shared = run_markers(state)
    per_vm: dict[str, list[pytest.MarkDecorator]] = {}
    per_check: dict[tuple[str, str, str], list[pytest.MarkDecorator]] = {}
    for item in items:
        mark = item.get_closest_marker(INVARIANT)
        callspec = getattr(item, "callspec", None)
        vm = callspec.params.get(VM_PARAM) if callspec else None
        if mark is None or vm is None:
            continue
        if vm not in per_vm:
            spec = specs.get(vm)
            per_vm[vm] = vm_markers(vm, spec.role if spec else "", (spec.ring if spec else "") or "")
        check = (mark.args[0], mark.kwargs["area"], mark.kwargs.get("severity", "critical"))
        if check not in per_check:
            per_check[check] = check_markers(*check)
        for marker in (*shared, *per_check[check], *per_vm[vm]):
            item.add_marker(marker)
        function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if function is not None and not hasattr(function, "__allure_display_name__"):
            try:
                function.__allure_display_name__ = f"{mark.args[0]} on {{{VM_PARAM}}}"
            except AttributeError:
                pass


# ------------------------------------------------------------------------------------------------ lifecycle

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember which Allure test result belongs to which VM (the lifecycle container lists them as children).

    tryfirst: before the fixtures run, so a test skipped or broken in setup is a child too."""
    config = item.config
    callspec = getattr(item, "callspec", None)
    vm = callspec.params.get(VM_PARAM) if callspec else None
    if vm is None or not _allure_enabled(config):
        return
    listener = config.pluginmanager.get_plugin("allure_listener")
    from allure_commons.model2 import TestResult

    result = listener.allure_logger.get_last_item(TestResult)
    if result is not None:
        config.stash.setdefault(CHILDREN_KEY, {}).setdefault(vm, []).append(result.uuid)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _step_name(step: Any) -> str:
    name = step.name.replace("_", " ")
    if step.detail:
        name += f": {step.detail}"
    if step.attempts > 1:
        name += f" ({step.attempts} attempts)"
    return redactor.redact(name)


def _attachment(body: str, name: str, mime: str, ext: str) -> Any:
    """Write one attachment file; the returned reference goes into the VM's lifecycle container."""
    from allure_commons.model2 import Attachment

    from patchgate_pytest.allure_writer import attach_data

    file_name = f"{uuid4()}-attachment.{ext}"
    attach_data(redactor.redact(body), file_name)
    return Attachment(name=name, source=file_name, type=mime)


def _attach(attachments: list, body: str, name: str, mime: str, ext: str) -> None:
    attachments.append(_attachment(body, name, mime, ext))


def _baseline_attachment(obs: Any) -> Any:
    return _attachment(pretty_json(obs.baseline.to_dict()), "baseline posture (JSON)", "application/json", "json")


def _install_attachment(obs: Any) -> Any:
    from patchgate.evidence.report import install_text

    return _attachment(install_text(obs.install), "install output", "text/plain", "txt")


def keep_posture_attachments(config: pytest.Config, vm: str, obs: Any) -> None:
    """Write a VM's posture evidence as soon as its checks are done: it is final by then (only the restore may
    still be running), and the end of the run then writes no more than the container that refers to it."""
    if not _allure_enabled(config):
        return
    kept = config.stash.setdefault(ATTACHMENTS_KEY, {})
    if vm in kept:
        return
    attachments: list = []
    try:
        posture_attachments(obs, attachments, early=config.stash.get(EARLY_KEY, {}).get(vm))
    except Exception as exc:  # noqa: BLE001 - the end of the run tries again
        log.warning("could not write the Allure attachments of %s yet: %s", vm, redactor.redact(str(exc)))
        return
    kept[vm] = attachments


def keep_early_attachments(config: pytest.Config, observations: dict[str, Any]) -> None:
    """Write the attachments that are final before a VM's post capture (its baseline posture and its install
    output, both known once its install is done) while the test loop waits for a VM to be ready: the end of the
    run, when every VM's checks write their results at once, then has that many files fewer to write."""
    if not _allure_enabled(config):
        return
    early = config.stash.setdefault(EARLY_KEY, {})
    for vm, obs in observations.items():
        parts = early.setdefault(vm, {})
        try:
            if "baseline" not in parts and obs.baseline is not None:
                parts["baseline"] = _baseline_attachment(obs)
            if "install" not in parts and obs.install is not None:
                parts["install"] = _install_attachment(obs)
        except Exception as exc:  # noqa: BLE001 - written with the rest when the VM's checks are done
            log.warning("could not write the Allure attachments of %s yet: %s", vm, redactor.redact(str(exc)))


def posture_attachments(obs: Any, attachments: list, *, early: dict[str, Any] | None = None) -> None:
    """Baseline/post posture JSON, the HTML diff, install output and event log excerpts of one VM (``early``:
    those of them written already, by ``keep_early_attachments``)."""
    from patchgate.model.diff import render_html
    from patchgate.evidence.report import event_excerpt, posture_diffs

    early = early or {}
    if obs.baseline is not None:
        attachments.append(early.get("baseline") or _baseline_attachment(obs))
    if obs.post is not None:
        _attach(attachments, pretty_json(obs.post.to_dict()),
                "post-update posture (JSON)", "application/json", "json")
    if obs.baseline is not None and obs.post is not None:
        diffs = posture_diffs(obs.baseline, obs.post)
        if diffs:
            _attach(attachments, render_html(diffs, title=f"{obs.vm.name}: baseline -> post-update"),
                    "posture diff (HTML)", "text/html", "html")
    if obs.install is not None:
        attachments.append(early.get("install") or _install_attachment(obs))
    excerpt = event_excerpt(obs.post) if obs.post is not None else ""
    if excerpt:
        _attach(attachments, excerpt, "event log excerpts (since baseline)", "text/plain", "txt")


def trouble_attachment(obs: Any, attachments: list) -> None:
    if obs.error is not None or obs.restore_error is not None:
        text = "\n".join(f"{what}: {err}" for what, err in (("lifecycle", obs.error), ("restore", obs.restore_error))
                         if err is not None)
        _attach(attachments, text, "lab trouble", "text/plain", "txt")


def write_lifecycle_container(vm: str, obs: Any, children: list[str], *, kept_note: str = "",
                              posture: list | None = None, early: dict[str, Any] | None = None) -> None:
    """The VM's container; ``posture`` holds its posture attachments when they were written already, ``early``
    those written while it was in the lab."""
    from allure_commons import plugin_manager
    from allure_commons.model2 import StatusDetails, TestBeforeResult, TestResultContainer, TestStepResult

    steps = []
    for step in obs.steps:
        start = _ms(step.started_at)
        details = None
        if not step.ok:
            failure = obs.restore_error if step.name == "restore" and obs.restore_error else obs.error
            details = StatusDetails(message=redactor.redact(str(failure)) if failure else "step failed")
        steps.append(TestStepResult(name=_step_name(step), status="passed" if step.ok else "broken",
                                    statusDetails=details, stage="finished", start=start,
                                    stop=start + int(step.duration * 1000)))
    first = steps[0].start if steps else _ms(dt.datetime.now(dt.UTC))
    last = max((s.stop for s in steps), default=first)
    status = "broken" if obs.error is not None else "passed"
    details = StatusDetails(message=redactor.redact(str(obs.error))) if obs.error is not None else None
    snapshot = obs.snapshot.identifier if obs.snapshot else obs.vm.snapshot
    before = TestBeforeResult(name=f"lifecycle of {vm} ({obs.vm.role})", status=status, statusDetails=details,
                              stage="finished", start=first, stop=last, steps=steps,
                              description=redactor.redact(f"snapshot {snapshot}; "
                                                          f"{'rebooted' if obs.rebooted else 'no reboot'}; "
                                                          f"{'restored' if obs.restored else 'not restored'}"
                                                          f"{kept_note}"))
    if posture is None:  # its checks never ended normally: the posture evidence is written now
        posture_attachments(obs, before.attachments, early=early)
    else:
        before.attachments.extend(posture)
    trouble_attachment(obs, before.attachments)
    container = TestResultContainer(uuid=str(uuid4()), name=f"lifecycle of {vm}", children=list(children),
                                    befores=[before], start=first, stop=last)
    plugin_manager.hook.report_container(container=container)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = run_state(config)
    if state is None or not _allure_enabled(config):
        return
    run = state.lab_run
    children = config.stash.get(CHILDREN_KEY, {})
    if run is not None:
        for vm, uuids in children.items():
            lifecycle = run.lifecycles.get(vm)
            if lifecycle is None:
                continue
            try:
                note = "; kept for debugging (--keep-on-failure)" if lifecycle.obs.kept else ""
                write_lifecycle_container(vm, lifecycle.obs, uuids, kept_note=note,
                                          posture=config.stash.get(ATTACHMENTS_KEY, {}).get(vm),
                                          early=config.stash.get(EARLY_KEY, {}).get(vm))
            except Exception as exc:  # noqa: BLE001 - evidence trouble must not hide the verdict
                log.warning("could not write the Allure lifecycle of %s: %s", vm, redactor.redact(str(exc)))
    if not hasattr(config, "workerinput"):
        write_run_metadata(config, state)


# ------------------------------------------------------------------------------------------------ metadata

def _properties_escape(value: str) -> str:
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return out.replace("=", "\\=").replace(":", "\\:")


def environment_properties(state: RunState, root: Path) -> dict[str, str]:
    """What an auditor needs to know about the environment of the run, in Allure's environment widget."""
    from patchgate.evidence.manifests import (
        cert_validation_of,
        component_versions,
        git_commit,
        sha256_file,
        vm_summaries,
    )
    versions = component_versions()
    git = git_commit(root)
    cert = cert_validation_of(vm_summaries(state.out_dir))
    # the order is the order of Allure's metadata widget, which shows the first eight before "Show more"
    props = {"lab": state.lab.name, "candidate": state.candidate.kb}
    for part in ("hypervisor", "remoting", "secrets"):
        props[f"cert.validation.{part}"] = ("on" if cert[part] else "OFF") if part in cert else "unknown"
    props["remoting.kind"] = state.lab.remoting.kind
    for package in state.candidate.packages:
        key = "package.sha256" if len(state.candidate.packages) == 1 else f"package.{package.file}.sha256"
        props[key] = package.sha256
    props["patchgate.version"] = versions["patchgate"] or ""
    props["patchgate.commit"] = (git["commit"] + (" (modified)" if git["dirty"] else "")) if git else "unknown"
    for name in ("pypsrp", "pyvmomi", "hvac", "python"):
        props[f"{name}.version"] = versions.get(name) or "not installed"
    props["hypervisor.kind"] = state.lab.hypervisor.kind
    props["secrets.kind"] = state.lab.secrets.kind
    props["candidate.title"] = state.candidate.title
    props["lab.file.sha256"] = sha256_file(state.lab_path) if state.lab_path.is_file() else "missing"
    props["candidate.file.sha256"] = (sha256_file(state.candidate_path) if state.candidate_path.is_file()
                                      else "missing")
    props["run.id"] = state.run_id
    return props


def render_properties(props: dict[str, str]) -> str:
    return "".join(f"{_properties_escape(k)}={_properties_escape(str(v))}\n" for k, v in props.items())


def executor_from_env(env: dict[str, str] | os._Environ[str], report_name: str = "") -> dict[str, Any] | None:
    """Allure's executor.json from CI variables: GitHub Actions, GitLab CI, Jenkins or Azure Pipelines; None
    elsewhere."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        run_url = f"{server}/{repo}/actions/runs/{env['GITHUB_RUN_ID']}"
        number = env.get("GITHUB_RUN_NUMBER", env["GITHUB_RUN_ID"])
        return {"name": "GitHub Actions", "type": "github", "url": f"{server}/{repo}",
                "buildOrder": int(number) if number.isdigit() else number,
                "buildName": f"{env.get('GITHUB_WORKFLOW', 'workflow')} #{number}"
                             f" ({env.get('GITHUB_JOB', 'job')}, attempt {env.get('GITHUB_RUN_ATTEMPT', '1')})",
                "buildUrl": run_url, "reportName": report_name}
    if env.get("GITLAB_CI") == "true" and env.get("CI_PIPELINE_ID"):
        order = env.get("CI_PIPELINE_IID", env["CI_PIPELINE_ID"])
        return {"name": "GitLab CI", "type": "gitlab", "url": env.get("CI_PROJECT_URL", ""),
                "buildOrder": int(order) if order.isdigit() else order,
                "buildName": f"{env.get('CI_PROJECT_PATH', 'project')} pipeline #{order}"
                             f" ({env.get('CI_JOB_NAME', 'job')})",
                "buildUrl": env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL", ""), "reportName": report_name}
    from patchgate.evidence.ci import ci_context

    context = ci_context(env)  # Jenkins and Azure Pipelines (patchgate.evidence.ci names the variables)
    if context is None or context["system"] not in ("jenkins", "azure-pipelines"):
        return None
    if context["system"] == "jenkins":
        order = env.get("BUILD_NUMBER", "")
        return {"name": "Jenkins", "type": "jenkins", "url": env.get("JENKINS_URL", ""),
                "buildOrder": int(order) if order.isdigit() else order, "buildName": context["build"],
                "buildUrl": context["run_url"] or "", "reportName": report_name}
    order = env.get("BUILD_BUILDID", "")
    return {"name": "Azure Pipelines", "type": "azure", "url": env.get("SYSTEM_COLLECTIONURI", ""),
            "buildOrder": int(order) if order.isdigit() else order, "buildName": context["build"],
            "buildUrl": context["run_url"] or "", "reportName": report_name}


def categories_source(root: Path) -> Path | None:
    """The suites' own Allure categories (reports/categories.json beside suites/), if they ship one."""
    path = root / "reports" / "categories.json"
    return path if path.is_file() else None


def write_run_metadata(config: pytest.Config, state: RunState) -> None:
    folder = results_dir(config)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    text = render_properties(environment_properties(state, config.rootpath))
    (folder / "environment.properties").write_text(redactor.redact(text), encoding="utf-8")
    executor = executor_from_env(os.environ, report_name=f"patchgate {state.candidate.kb} on {state.lab.name}")
    if executor is not None:
        (folder / "executor.json").write_text(redactor.redact(json.dumps(executor, indent=2)) + "\n",
                                              encoding="utf-8")
    source = categories_source(config.rootpath)
    if source is not None:
        shutil.copyfile(source, folder / "categories.json")
    else:
        log.warning("reports/categories.json not found: the Allure report will use default categories")
