"""Command-line options and the one-time loading of lab and candidate (ConfigError -> exit 4)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from patchgate_pytest.state import STATE_KEY, RunState, forget, remember
from patchgate.config import resolve_candidate, resolve_lab
from patchgate.errors import EXIT_CONFIG, ConfigError
from patchgate.config.inputs import INPUTS_CHECKED_BY_PARENT, new_run_id
from patchgate.run.interrupts import stop_once_on_signals
from patchgate.run.labrun import RunSelection, load_inputs
from patchgate.evidence.outdir import require_fresh_out_dir
from patchgate.secrets.env import require_env_credentials
from patchgate.labkinds import prepare_lab


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("patchgate", "patchgate: validate a Windows update on a lab")
    group.addoption("--lab", default=None, help="lab file or name under labs/ (e.g. twin)")
    group.addoption("--candidate", default=None, help="candidate file or KB id under candidates/ (e.g. KB5070881)")
    group.addoption("--out", default=None, help="output folder for gate.json, junit.xml, allure-results/ "
                    "(default: a new folder under reports/)")
    group.addoption("--twin-catalog", action="append", default=[], metavar="DIR",
                    help="extra twin images and behaviours (repeatable)")
    group.addoption("--vm", action="append", default=[], metavar="NAME", help="only this VM (repeatable)")
    group.addoption("--role", action="append", default=[], metavar="ROLE", help="only VMs with this role")
    group.addoption("--ring", action="append", default=[], metavar="RING", help="only VMs in this ring")
    group.addoption("--keep-on-failure", action="store_true", default=False,
                    help="do not revert VMs whose checks failed or broke (says so in the output)")
    group.addoption("--seed", type=int, default=None, metavar="N", help="seed of the twin's real-world noise")
    group.addoption("--fresh-seed", type=int, default=None, help="the seed `patchgate validate` drew when neither --seed nor the lab file names one")
    group.addoption("--control", action="store_true", default=False,
                    help="a control run per VM without the candidate (lab `control: reboot`; "
                         "on each VM's control_pair with `control: {vm: paired}`)")
    group.addoption("--run-id", default=None, help="run identifier (default: generated)")


def default_out_dir(root: Path, candidate_kb: str, lab_name: str, run_id: str) -> Path:
    """reports/<run>-<KB>-<lab> beside the suites (pytest's rootdir)."""
    return root / "reports" / f"{run_id}-{candidate_kb}-{lab_name}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from patchgate.secrets import install_logging_redaction

    install_logging_redaction()  # pytest's log capture, live logs and Allure's log attachments see masked text
    remember(config)
    lab_value = config.getoption("--lab")
    candidate_value = config.getoption("--candidate")
    if lab_value is None and candidate_value is None:
        return  # the harness's own tests, or --help: no lab run
    if not lab_value or not candidate_value:
        raise pytest.UsageError("patchgate needs both --lab and --candidate")
    worker_input = getattr(config, "workerinput", None)
    try:
        lab_path = resolve_lab(lab_value)
        candidate_path = resolve_candidate(candidate_value)
        lab, candidate = load_inputs(lab_path, candidate_path)
        lab = prepare_lab(lab, seed=config.getoption("--seed"),
                          fresh_seed=config.getoption("--fresh-seed") or (worker_input or {}).get("patchgate_seed"))
        if config.getoption("--control"):
            lab = lab.model_copy(update={"control": lab.control_plan.model_copy(update={"mode": "reboot"})})
        selection = RunSelection(vms=config.getoption("--vm"), roles=config.getoption("--role"),
                                 rings=config.getoption("--ring"))
        selected = selection.apply(lab)
        require_env_credentials(lab)
        catalogs = [Path(p) for p in config.getoption("--twin-catalog")]
        for folder in catalogs:
            if not folder.is_dir():
                raise ConfigError("--twin-catalog: not a directory", file=str(folder))
    except ConfigError as exc:
        if os.environ.get(INPUTS_CHECKED_BY_PARENT) == "1":
            os._exit(EXIT_CONFIG)  # `patchgate validate` checks the same files and says what is wrong, once
        raise pytest.UsageError(str(exc)) from None
    run_id = config.getoption("--run-id") or (worker_input or {}).get("patchgate_run_id") or new_run_id()
    out = config.getoption("--out") or (worker_input or {}).get("patchgate_out")
    out_dir = Path(out) if out else default_out_dir(config.rootpath, candidate.kb, lab.name, run_id)
    if worker_input is None:
        try:
            require_fresh_out_dir(out_dir)  # under `patchgate validate`: the empty folder it checked and made
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    if worker_input is None:
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = str(out_dir / "junit.xml")
        if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
            config.option.allure_report_dir = str(out_dir / "allure-results")
    config.stash[STATE_KEY] = RunState(
        lab=lab, candidate=candidate, lab_path=lab_path.resolve(), candidate_path=candidate_path.resolve(),
        out_dir=out_dir.resolve(), run_id=run_id, selection=selection, selected_vms=selected,
        kind_catalogs=catalogs, keep_on_failure=config.getoption("--keep-on-failure"),
        started_at=dt.datetime.now(dt.timezone.utc), today=_today())
    if worker_input is None:
        _private_basetemp(config)
    # Ctrl-C / SIGTERM end the run once (pytest tears the lab run down: VMs restored, leases released, a partial
    # gate.json); a signal held back while this process started (patchgate validate blocks them) arrives now.
    stop_once_on_signals()


PRIVATE_BASETEMP = pytest.StashKey[Path]()


def _private_basetemp(config: pytest.Config) -> None:
    """pytest's temporary folders for this run alone: named here, before pytest's own configure reads
    ``--basetemp``, and removed when the run ends. Without ``--basetemp`` a session that makes them (every
    pytest-xdist run does, for its workers) numbers one under /tmp/pytest-of-<user>/ and at its end deletes that
    user's older numbered folders but three: the folders of their own pytest sessions, which a gate run must not
    touch, and which took seconds to delete after the verdict. A run given ``--basetemp`` keeps it, as pytest
    does."""
    import tempfile

    if config.option.basetemp:
        return
    folder = Path(tempfile.mkdtemp(prefix="patchgate-pytest-"))
    config.option.basetemp = str(folder)
    config.stash[PRIVATE_BASETEMP] = folder


def _today() -> dt.date:
    """Waiver expiry is judged against today's date; PATCHGATE_TODAY pins it for reproducible audits."""
    from patchgate.environment import environment

    try:
        pinned = environment().today
    except ConfigError as exc:
        raise pytest.UsageError(f"{exc.detail} (an ISO date, YYYY-MM-DD)") from None
    return pinned or dt.date.today()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller -> worker: share run id and output folder
    from patchgate_pytest.state import run_state

    state = run_state(node.config)
    if state is not None:
        node.workerinput["patchgate_run_id"] = state.run_id
        node.workerinput["patchgate_out"] = str(state.out_dir)
        node.workerinput["patchgate_seed"] = getattr(state.lab.hypervisor.settings, "seed", None)  # one noise


def pytest_report_header(config: pytest.Config) -> list[str]:
    from patchgate_pytest.state import run_state

    state = run_state(config)
    if state is None:
        return []
    vms = ", ".join(f"{vm.name} ({vm.role})" for vm in state.selected_vms)
    return [f"patchgate: candidate {state.candidate.kb} ({state.candidate.classification}) on lab "
            f"{state.lab.name} [{state.lab.hypervisor.kind}/{state.lab.remoting.kind}]",
            f"patchgate: VMs {vms}", f"patchgate: output {state.out_dir}"]


def pytest_unconfigure(config: pytest.Config) -> None:
    forget(config)
    folder = config.stash.get(PRIVATE_BASETEMP, None)
    if folder is not None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
