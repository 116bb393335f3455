"""The lab run as pytest fixtures: one run per session, one observation per VM, a testinfra host per VM."""

from __future__ import annotations

import os
from typing import Any, Callable, Generator, Iterator

import pytest

from patchgate_pytest.invariants import APPLIES_TO
from patchgate_pytest.state import RunState, active_configs, run_state
from patchgate.config import Candidate, Policy
from patchgate.errors import LabError
from patchgate.config.inputs import INPUTS_CHECKED_BY_PARENT
from patchgate.run.interrupts import stop_requested
from patchgate.run.labrun import LabRun
from patchgate.model.observations import VmObservation

VM_PARAM = "vm_name"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that takes ``obs`` over the selected VMs whose role the module applies to."""
    if not {"obs", "host", "reachability"} & set(metafunc.fixturenames):
        return
    state = run_state(metafunc.config)
    if state is None:
        return
    roles: set[str] = set()
    for mark in metafunc.definition.iter_markers(APPLIES_TO):
        roles.update(mark.args)
    vms = [vm for vm in state.selected_vms if not roles or vm.role in roles]
    names = [vm.name for vm in vms]
    # session scope: one vm_name per VM for the whole run (not one per check), and pytest keeps each VM's checks
    # together, so they run as soon as that VM is ready
    metafunc.parametrize(VM_PARAM, names, ids=names, scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the placeholder pytest makes for a suite none of whose roles is in the selection."""
    if run_state(config) is None:
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        value = callspec.params.get(VM_PARAM) if callspec is not None else ""
        (keep if value is None or isinstance(value, str) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _vm_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(VM_PARAM) if callspec is not None else None
    return value if isinstance(value, str) else None


def _vms_with_checks(config: pytest.Config, vm_names: set[str | None]) -> list[str]:
    """The selected VMs that have checks, in the lab file's order (not the items', which pytest reorders)."""
    state = run_state(config)
    return [vm.name for vm in state.selected_vms if vm.name in vm_names] if state is not None else []


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under pytest-xdist every check of one VM goes to one worker (each VM's lifecycle runs once), and every
    VM is handed out at once (patchgate_pytest.vm_scheduling)."""
    if run_state(config) is None:
        return None
    from patchgate_pytest.vm_scheduling import VmScheduling
    from xdist.workermanage import parse_tx_spec_config

    state = run_state(config)
    return VmScheduling(config, [vm.name for vm in state.selected_vms], len(parse_tx_spec_config(config)))


def _selected_vm_names(session: pytest.Session) -> list[str]:
    """The VMs whose lifecycles this process starts at once: every VM with checks in one process; under
    pytest-xdist the VMs the scheduler deals to this worker (patchgate_pytest.vm_scheduling). A worker that replaces
    one that died starts none at once: it learns its VMs as their checks arrive (``LabRun.observation``)."""
    from patchgate_pytest.vm_scheduling import original_worker_index, vm_partition

    config = session.config
    names = _vms_with_checks(config, {_vm_of(item) for item in session.items})
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return names
    workers = int(workerinput["workercount"])
    state = run_state(config)
    partition = vm_partition([vm.name for vm in state.selected_vms] if state else [], workers)
    own = original_worker_index(str(workerinput.get("workerid", "")), workers)
    return [name for name in names if own is not None and partition.get(name) == own]


@pytest.fixture(scope="session")
def patchgate_state(pytestconfig: pytest.Config) -> RunState:
    state = run_state(pytestconfig)
    if state is None:
        pytest.fail("patchgate suites need --lab and --candidate", pytrace=False)
    return state


def start_lab_run(config: pytest.Config, session: pytest.Session) -> LabRun:
    """Create the session's lab run and start every VM's lifecycle at once; idempotent. Called by the
    ``lab_run`` fixture, or earlier by the progress view so the lifecycles prepare before tests report."""
    from patchgate_pytest.progress import progress_for, transfer_for

    state = run_state(config)
    assert state is not None
    if state.lab_run is not None:
        return state.lab_run
    names = _selected_vm_names(session)
    # Restore each VM right after its post capture unless a check needs the live VM (testinfra's `host`) or
    # --keep-on-failure must see the verdicts first: the restore then overlaps the checks instead of following them.
    live_vm_needed = any("host" in getattr(item, "fixturenames", ()) for item in session.items)
    run = LabRun(state.lab, state.candidate, selection=state.selection, kind_catalogs=state.kind_catalogs,
                 run_id=state.run_id, progress=progress_for(config), transfer=transfer_for(config),
                 keep_on_failure=state.keep_on_failure,
                 restore_when_captured=not live_vm_needed,
                 kind_inputs_checked=os.environ.get(INPUTS_CHECKED_BY_PARENT) == "1",
                 xdist_worker=hasattr(config, "workerinput"))
    state.lab_run = run
    from patchgate_pytest.progress import lease_wait_for
    from patchgate.leases.base import lease_waits

    token = lease_waits.set(lease_wait_for(config))  # who holds a VM this run waits for, and since when
    try:
        run.start(names)
    finally:
        lease_waits.reset(token)
    return run


WARMED_UP = pytest.StashKey[bool]()  # the one-time work of while_no_vm_is_ready is done


def while_no_vm_is_ready(session: pytest.Session, run: LabRun) -> Callable[[], None]:
    """What the progress view does between its short waits for the first ready VM, so that the work is not
    done when the VMs' checks all want the CPU: the one-time work of reporting checks (first call), then the
    evidence that is final already (patchgate_pytest.allure_wiring)."""
    from patchgate_pytest.allure_wiring import keep_early_attachments

    def meanwhile() -> None:
        if not session.config.stash.get(WARMED_UP, False):
            session.config.stash[WARMED_UP] = True
            read_run_facts()
            warm_up_reporting(session.items)
        keep_early_attachments(session.config, {name: lc.obs for name, lc in list(run.lifecycles.items())})

    return meanwhile


def read_run_facts() -> None:
    """The checkout's commit and the components' versions, which the evidence and Allure's environment record
    at the end of the run: read once per process (patchgate.evidence.manifests keeps them), now rather than then."""
    from patchgate.evidence.manifests import component_versions, git_commit
    from patchgate.evidence.manifests import PACKAGE_FOLDER

    git_commit(PACKAGE_FOLDER)
    component_versions()


def warm_up_reporting(items: list[pytest.Item]) -> None:
    """Do the one-time work of reporting checks before the first VM is ready rather than in the middle of its
    checks: the first failure's traceback makes inspect map every loaded module to its file (a scan of the
    whole interpreter), and the first VM's attachments load the diff and report code."""
    import inspect

    import patchgate.model.diff  # noqa: F401 - loaded now, used by the posture attachments
    import patchgate.evidence.report  # noqa: F401

    code = next((item.function.__code__ for item in items if hasattr(getattr(item, "function", None), "__code__")),
                None)
    if code is not None:
        inspect.getmodule(code, code.co_filename)  # the first lookup maps every loaded module to its file


def finish_lab_run(config: pytest.Config, session: pytest.Session, run: LabRun) -> None:
    """Restore every VM, release the leases and record the run's evidence; once, whoever calls first."""
    from patchgate_pytest.checks import failed_vms
    from patchgate_pytest.evidence_hooks import record_run

    if run.finished_at is not None:
        return
    # Ctrl-C while the checks run reaches this (the run loop's end) before pytest's keyboard-interrupt hook: the
    # run must stop here, or the restore would wait for a VM's hung install to reach its own timeout first
    if session.shouldstop or session.shouldfail or stop_requested():
        run.interrupt()
    run.finish(failed_vms=failed_vms(config), close_in_background=True)  # joined at unconfigure
    record_run(config, run)




@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The lab's components (the twin's process, a vCenter session) are closed before pytest ends."""
    state = run_state(config)
    if state is not None and state.lab_run is not None:
        state.lab_run.wait_closed()


@pytest.fixture(scope="session")
def lab_run(request: pytest.FixtureRequest, patchgate_state: RunState) -> Iterator[LabRun]:
    """Start every selected VM's lifecycle at once; restore them all when the session ends (even on Ctrl-C)."""
    run: LabRun | None = None
    try:
        run = start_lab_run(request.config, request.session)
        yield run
    except BaseException:
        if run is not None:
            run.interrupt()
        raise
    finally:
        run = run or patchgate_state.lab_run
        if run is not None:
            finish_lab_run(request.config, request.session, run)


@pytest.hookimpl(wrapper=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> Generator[None, None, None]:
    """Interrupted anywhere: lifecycles stop at their next step; the session teardown then restores every VM.

    First, before any other plugin reports the interrupt: CPython 3.11 can leave the frame a signal landed in
    without a line number, and pytest's own report of the interrupt then fails with a TypeError on it
    (pytest-dev/pytest-xdist#1196), a traceback printed in the middle of the run's end. Such frames are left out
    of the report."""
    for config in active_configs():
        state = run_state(config)
        if state is not None and state.lab_run is not None:
            state.lab_run.interrupt()
    numbered = excinfo.traceback.filter(_has_line_number)
    if len(numbered):
        excinfo.traceback = numbered
    return (yield)


def _has_line_number(entry: Any) -> bool:
    try:
        entry.lineno  # noqa: B018 - raises on a frame without one
    except TypeError:
        return False
    return True


@pytest.fixture
def vm_name(request: pytest.FixtureRequest) -> str:
    return request.param  # parametrized by pytest_generate_tests


@pytest.fixture(scope="session")
def obs(request: pytest.FixtureRequest, lab_run: LabRun, vm_name: str) -> VmObservation:
    """The finished observation of one VM, set up once for all its checks (they only read it); lab trouble
    makes every one of them *broken* (pytest raises the same setup error for each). When its checks are done,
    its posture evidence is written at once rather than at the end of the run."""
    __tracebackhide__ = True
    try:
        observation = lab_run.observation(vm_name)
    except BaseException:  # Ctrl-C / SIGTERM while waiting: stop every lifecycle at its next step now
        lab_run.interrupt()
        raise
    if observation.error is not None:
        raise observation.error
    if observation.unreachable is not None:
        pytest.skip(f"{vm_name} refuses remoting after the update's restart, so nothing can be compared: "
                    "management.reachable fails")
    if observation.post is None or observation.baseline is None:
        raise LabError("the lifecycle finished without both captures", vm=vm_name)

    def checks_done() -> None:
        from patchgate_pytest.allure_wiring import keep_posture_attachments

        keep_posture_attachments(request.config, vm_name, observation)

    request.addfinalizer(checks_done)
    return observation


@pytest.fixture(scope="session")
def reachability(lab_run: LabRun, vm_name: str) -> VmObservation:
    """The VM's observation for management.reachable: also when its guest refused remoting after the update
    (which makes ``obs`` skip every other check); lab trouble still makes it broken."""
    observation = lab_run.observation(vm_name)
    if observation.error is not None:
        raise observation.error
    return observation


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The lab's kind may act before each of a VM's checks (the twin plays a worker that dies mid-run)."""
    vm_name = _vm_of(item)
    state = run_state(item.config)
    if vm_name is None or state is None or state.lab_run is None or state.lab_run.components is None:
        return
    parts = state.lab_run.components.parts
    if parts.before_check is not None:
        parts.before_check(vm_name, state.lab_run.ledger, hasattr(item.config, "workerinput"))


@pytest.fixture(scope="session")
def candidate(patchgate_state: RunState) -> Candidate:
    return patchgate_state.candidate


@pytest.fixture(scope="session")
def policy(patchgate_state: RunState) -> Policy:
    return patchgate_state.lab.policy


@pytest.fixture(scope="session")
def hotpatch_calendar(patchgate_state: RunState):
    """The lab's calendar (lab file ``calendar:``) or the built-in one."""
    from patchgate.calendar.schedule import HotpatchCalendar, default_calendar

    path = patchgate_state.lab.calendar_path
    return HotpatchCalendar.load(path) if path is not None else default_calendar()
