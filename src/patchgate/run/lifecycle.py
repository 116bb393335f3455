"""The per-VM sequence: revert, power on, ready, baseline, install, reboot if demanded, ready, post, restore.

``prepare`` runs up to the post capture and leaves the VM up so suites (and testinfra's ``host``) can look at it;
``restore`` reverts it and is called in every outcome, including Ctrl-C. Lab trouble becomes ``obs.error``
(the VM's checks are then *broken*), never an exception that escapes to the caller.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from patchgate.config.candidate import Candidate
from patchgate.config.lab import Lab, VmSpec
from patchgate.errors import LabError, LabTimeout, LeaseError, LeaseLost, PatchgateError
from patchgate.hypervisors.base import Hypervisor
from patchgate.run.ledger import Ledger
from patchgate.model.observations import InstallRecord, Step, VmObservation
from patchgate.remoting.base import RemoteSession, Remoting, Script, ScriptResult
from patchgate.remoting.staging import PackageSource
from patchgate.run.retry import with_retries
from patchgate.run.transfer import TransferCallback, TransferWatch
from patchgate.secrets.base import SecretsProvider
from patchgate.secrets.redact import redactor

if TYPE_CHECKING:
    from patchgate.wsus.round import WsusRound

log = logging.getLogger("patchgate.run.lifecycle")

ProgressCallback = Callable[[str, str, str], None]  # (vm, step, state: start|ok|fail|info)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _offset(posture: object, sent: dt.datetime, answered: dt.datetime) -> float | None:
    """The guest's clock minus the controller's, in seconds, measured at one capture: the capture's own time
    (capturedAt, the guest's clock) against the middle of the round trip that fetched it."""
    captured = getattr(posture, "captured_at", None)
    if captured is None:
        return None
    return round((captured - (sent + (answered - sent) / 2)).total_seconds(), 3)


def _lag(posture: object, answered: dt.datetime) -> dt.timedelta | None:
    """The guest's clock minus the controller's at its lowest, from one capture: capturedAt against the moment its
    answer arrived (the capture was taken before that). A controller time plus this lag is the earliest the
    guest's clock can have shown at that moment, which is what a ``Since`` filter on the guest needs."""
    captured = getattr(posture, "captured_at", None)
    return None if captured is None else captured - answered


@dataclass
class LifecycleContext:
    """Everything the per-VM lifecycles of one run share."""

    lab: Lab
    candidate: Candidate
    hypervisor: Hypervisor
    remoting: Remoting
    secrets: SecretsProvider
    run_id: str
    ledger: Ledger
    stop: threading.Event = field(default_factory=threading.Event)
    progress: ProgressCallback | None = None
    semaphores: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)
    restore_when_captured: bool = False  # nothing will look at the live VMs after the post capture
    on_prepared: Callable[[str], object] | None = None  # told each VM's name once its observation is final
    confirm_lease: Callable[[str], None] | None = None  # raises LeaseLost unless the run still holds the VM
    packages: PackageSource | None = None  # where the VMs pull the candidate from (None: pushed to them)
    transfer: TransferCallback | None = None  # told the bytes each VM pulled so far, while they move
    wsus: "WsusRound | None" = None  # lab `install: {via: wsus}`: the run's approval on its WSUS server

    def __post_init__(self) -> None:
        limits = self.lab.limits
        self.semaphores = {
            "revert": threading.BoundedSemaphore(limits.revert),
            "install": threading.BoundedSemaphore(limits.install),
            "capture": threading.BoundedSemaphore(limits.capture),
        }


class VmLifecycle:
    installs = True  # it installs the candidate, so the run serves its packages (patchgate doctor does not)
    def __init__(self, ctx: LifecycleContext, vm: VmSpec) -> None:
        self.ctx = ctx
        self.vm = vm
        self.obs = VmObservation(vm=vm)
        self.session: RemoteSession | None = None
        self.prepared = threading.Event()
        self._touched = False  # the VM was changed by this run and must be restored
        self._guest_lag: dt.timedelta | None = None  # lowest lag measured since the baseline (see _on_guest_clock)
        self._pair: VmLifecycle | None = None  # the paired control's lifecycle (control: {vm: paired})

    # ------------------------------------------------------------ steps

    def _fence(self, step: str) -> None:
        """Before a step that changes the VM: prove the run still holds its lease (docs/vault.md, fencing)."""
        if self.ctx.confirm_lease is None:
            return
        try:
            self.ctx.confirm_lease(self.vm.name)
        except LeaseError as exc:
            raise exc.at(vm=self.vm.name, step=step)

    def _fence_restore(self) -> None:
        """A restore needs the lease too: a VM another run holds now is left to it (it reverts before use)."""
        try:
            self._fence("restore")
        except LeaseLost as exc:
            raise LeaseLost(f"not restored: {exc.detail}; the run that holds the VM now reverts it before use, "
                            "'patchgate reap' restores it otherwise", vm=self.vm.name, step="restore") from None
        except LeaseError as exc:  # not lost, only not provable this moment: within its TTL nobody else holds it
            log.warning("%s: restoring although the lease could not be confirmed just now: %s", self.vm.name,
                        exc.detail)

    @contextlib.contextmanager
    def step(self, name: str, *, limit: str | None = None, mutates: bool = False) -> Iterator[Step]:
        if self.ctx.stop.is_set():
            raise LabError("run interrupted before this step", vm=self.vm.name, step=name)
        record = Step(name=name, started_at=_now())
        self.obs.steps.append(record)
        self._emit(name, "start")
        began = time.monotonic()
        semaphore = self.ctx.semaphores.get(limit) if limit else None
        try:
            with semaphore or contextlib.nullcontext():
                if mutates:
                    self._fence(name)  # after the wait for the lab's limit: right before the change
                yield record
        except PatchgateError as exc:
            record.ok = False
            record.detail = redactor.redact(str(exc))
            record.duration = time.monotonic() - began
            self._emit(name, "fail", record.detail)
            if isinstance(exc, LabError):
                exc.at(vm=self.vm.name, step=name)
            raise
        except Exception as exc:  # a bug or a library surprise: still lab trouble, never a verdict
            record.ok = False
            record.detail = redactor.redact(f"{exc.__class__.__name__}: {exc}")
            record.duration = time.monotonic() - began
            self._emit(name, "fail", record.detail)
            raise LabError(f"unexpected {exc.__class__.__name__}: {redactor.redact(str(exc))}",
                           vm=self.vm.name, step=name) from exc
        record.duration = time.monotonic() - began
        self._emit(name, "ok", f"{record.duration:.2f}s")

    def _emit(self, step: str, state: str, detail: str = "") -> None:
        if state == "fail":
            log.warning("%s: %s failed: %s", self.vm.name, step, detail)
        else:
            log.info("%s: %s %s%s", self.vm.name, step, state, f" ({detail})" if detail else "")
        if self.ctx.progress:
            self.ctx.progress(self.vm.name, step, state)

    def _retry(self, operation: str, func: Callable[[], object]) -> object:
        def note(attempt: int, exc: LabError) -> None:
            if self.obs.steps:
                self.obs.steps[-1].attempts = attempt + 1
                self._emit(self.obs.steps[-1].name, "retry")  # progress shows the retry, not a plain "ok"

        return with_retries(operation, func, self.ctx.lab.retries, vm=self.vm.name, stop=self.ctx.stop,
                            on_retry=note)

    # ------------------------------------------------------------ prepare

    def prepare(self) -> VmObservation:
        """Run the sequence up to the post capture; lab trouble is recorded, never raised."""
        try:
            self._prepare()
        except LabError as exc:
            self.obs.error = exc
        except PatchgateError as exc:
            self.obs.error = LabError(str(exc), vm=self.vm.name)
        finally:
            self._settle_observation()
        if self.ctx.restore_when_captured:
            self.restore()  # while the checks run: they only read the finished observation
        return self.obs

    def never_prepared(self, error: LabError) -> None:
        """The run finished before this VM's prepare began (it never will): broken, with nothing touched."""
        self.obs.error = error
        self._settle_observation()

    def _settle_observation(self) -> None:
        """The observation is final: whoever waits for it (the suites, the lab's WSUS round) goes on."""
        if self.ctx.wsus is not None:
            self.ctx.wsus.finished(self.vm.name, self.obs.error)
        self._finish_pair()
        self.prepared.set()
        if self.ctx.on_prepared is not None:
            self.ctx.on_prepared(self.vm.name)

    def _prepare(self) -> None:
        ctx, vm, obs = self.ctx, self.vm, self.obs
        self._start_pair()
        self._bring_up()
        self._connect()
        self._preflight()
        self._settle(before_baseline=True)
        with self.step("capture_baseline", limit="capture") as baseline_step:
            taken = _now()
            baseline = self._take_capture(since=None)
            baseline_window = (taken, _now())
        reading = self._read_while_installing(baseline, baseline_step)
        try:
            self._install()
        except BaseException:
            with contextlib.suppress(Exception):
                obs.baseline, obs.baseline_raw = reading.result()  # evidence of the VM before the failed install
            raise
        self._pair_installed(bool(obs.install and obs.install.restart_needed))
        obs.baseline, obs.baseline_raw = reading.result()  # a capture nobody can read: lab trouble, raised
        obs.clock_offsets["baseline"] = _offset(obs.baseline, *baseline_window)
        self._guest_lag = _lag(obs.baseline, baseline_window[1])
        if obs.install and obs.install.restart_needed:
            self._reboot()
            if obs.unreachable is not None:
                return  # nothing more can be read from the guest; its restore still runs
        self._settle()
        if vm.role == "wsus-server":
            self._wsus_sync()
        with self.step("capture_post", limit="capture"):
            since = self._on_guest_clock(obs.install.started_at) if obs.install else None
            taken = _now()
            obs.post, obs.post_raw = self._capture(since=since)
            self._fence("capture_post")  # the lease was still ours when the post capture ended
            obs.clock_offsets["post"] = _offset(obs.post, taken, _now())
        plan = ctx.lab.control_plan
        if plan.mode == "reboot" and plan.vm == "same":
            self._control()

    def _bring_up(self, prefix: str = "") -> None:
        """Revert to the snapshot, power on, wait until the guest is ready (steps named with ``prefix``)."""
        ctx, vm, obs = self.ctx, self.vm, self.obs
        with self.step(f"{prefix}revert", limit="revert", mutates=True):
            ctx.ledger.record("revert", vm=vm.name, snapshot=vm.snapshot)
            self._touched = True
            obs.snapshot = self._retry("revert", lambda: ctx.hypervisor.revert(vm))  # type: ignore[assignment]
            ctx.hypervisor.mark_in_use(vm, ctx.run_id)
        with self.step(f"{prefix}power_on", mutates=True):
            self._retry("power on", lambda: ctx.hypervisor.power_on(vm))
        with self.step(f"{prefix}wait_ready"):
            obs.endpoint = ctx.hypervisor.wait_ready(vm, ctx.lab.timeouts.ready)

    def _control(self) -> None:
        """The control run on the same VM: restored after the candidate's run and taken through the same lifecycle
        without the candidate. Its observation goes to ``control``; lab trouble in it is recorded, never raised:
        the candidate's own results stand."""
        main = self.obs
        control = VmObservation(vm=self.vm)
        self.obs = control
        try:
            if self.session is not None:
                self.session.close()
                self.session = None
            self._control_run(lambda: main.rebooted)
            main.control = control
        except LabError as exc:
            main.control_error = redactor.redact(str(exc))
        finally:
            main.steps.extend(control.steps)
            self.obs = main

    def _control_run(self, restart: Callable[[], bool]) -> None:
        """The control's lifecycle on ``self.vm`` into ``self.obs``: revert, power on, settle, baseline, the
        restart the candidate demanded (``restart`` says whether it did, waiting for it if need be), settle, WSUS
        sync on WSUS servers, post capture."""
        vm, control = self.vm, self.obs
        self._bring_up("control_")
        self._connect("control_connect")
        self._settle(before_baseline=True)
        with self.step("control_capture_baseline", limit="capture"):
            taken = _now()
            control.baseline, control.baseline_raw = self._capture(since=None)
            answered = _now()
            control.clock_offsets["baseline"] = _offset(control.baseline, taken, answered)
            self._guest_lag = _lag(control.baseline, answered)
        began = _now()
        control.install = InstallRecord(kb="(control: no candidate)", exit_code=0, restart_needed=False,
                                        output=[], started_at=began, finished_at=began)
        restarted = restart()  # a paired control waits here for the candidate's install
        if restarted:
            self._reboot()
            if control.unreachable is not None:
                raise LabError(f"the control did not answer remoting after its restart "
                               f"({control.unreachable.get('error')})", vm=vm.name, step="control")
        self._settle()
        if vm.role == "wsus-server":
            self._wsus_sync()
        with self.step("control_capture_post", limit="capture"):
            taken = _now()
            control.post, control.post_raw = self._capture(since=self._on_guest_clock(began))
            control.clock_offsets["post"] = _offset(control.post, taken, _now())

    # ------------------------------------------------------------ control on a paired VM

    def _start_pair(self) -> None:
        """``control: {vm: paired}``: the control runs on this VM's pair (same image and snapshot) at the same time
        as the candidate's run, on a thread of its own; it restarts when the candidate's install asks for one."""
        pair = self.vm.paired()
        if pair is None or self.ctx.lab.control_plan.mode != "reboot" or self.ctx.lab.control_plan.vm != "paired":
            return
        self._pair = VmLifecycle(self.ctx, pair)
        self._pair_restart: cf.Future[bool] = cf.Future()
        self._pair_thread = threading.Thread(target=self._pair._run_as_control, args=(self._pair_restart,),
                                             name=f"patchgate-control-{pair.name}", daemon=True)
        self._pair_thread.start()

    def _run_as_control(self, restart: "cf.Future[bool]") -> None:
        try:
            self._control_run(restart.result)
        except LabError as exc:
            self.obs.error = exc
        except PatchgateError as exc:
            self.obs.error = LabError(str(exc), vm=self.vm.name)
        except BaseException as exc:  # noqa: BLE001 - a bug in the control never breaks the candidate's run
            self.obs.error = LabError(f"unexpected {exc.__class__.__name__}: {redactor.redact(str(exc))}",
                                      vm=self.vm.name, step="control")

    def _pair_installed(self, restart_needed: bool | None) -> None:
        """Tell the paired control what the candidate's install demanded (None: the run ended before it)."""
        future = getattr(self, "_pair_restart", None)
        if future is None or future.done():
            return
        if restart_needed is None:
            future.set_exception(LabError("the candidate's run ended before its install finished, so the control "
                                          "has nothing to repeat", vm=self._pair.vm.name, step="control"))
        else:
            future.set_result(restart_needed)

    def _finish_pair(self) -> None:
        """Wait for the paired control and attach it: its observation as ``control``, or why it failed."""
        pair = getattr(self, "_pair", None)
        if pair is None:
            return
        self._pair_installed(None)
        self._pair_thread.join()
        self.obs.steps.extend(pair.obs.steps)
        if pair.obs.error is not None:
            self.obs.control_error = f"on the paired VM {pair.vm.name}: {redactor.redact(str(pair.obs.error))}"
        elif pair.obs.post is not None:
            self.obs.control = pair.obs

    def _on_guest_clock(self, when: dt.datetime) -> dt.datetime:
        """A controller time as the guest's clock showed it at the earliest: what the guest stamped after ``when``
        is at or after this, whatever its skew, and a clock the guest stepped back since the baseline (seen by a
        later look) widens the window rather than hiding events. Without a measurement, ``when`` itself."""
        return when + self._guest_lag if self._guest_lag is not None else when

    def _measured(self, posture: object, answered: dt.datetime) -> None:
        lag = _lag(posture, answered)
        if lag is not None and self._guest_lag is not None:
            self._guest_lag = min(self._guest_lag, lag)

    def _connect(self, step: str = "connect") -> None:
        ctx, vm, obs = self.ctx, self.vm, self.obs
        with self.step(step):
            assert obs.endpoint is not None
            credentials = ctx.secrets.remoting_credentials(vm)
            endpoint = obs.endpoint

            def open_session() -> RemoteSession:
                return ctx.remoting.open(vm.name, endpoint, credentials)

            self.session = self._retry("connect", open_session)  # type: ignore[assignment]

    def _preflight(self) -> None:
        """The cheap doctor checks (docs/doctor.md) before anything is installed: a VM that fails one is lab
        trouble with the check's reason and advice, and nothing is installed on it."""
        from patchgate.doctor.preflight import blocking, run_preflight

        with self.step("preflight") as record:
            assert self.session is not None
            checks = run_preflight(self.session, self.ctx.candidate, timeout=self.ctx.lab.timeouts.capture)
            failed = blocking(checks)
            record.detail = "; ".join(f"{c.name}: {c.status}" for c in checks)
            if failed:
                raise LabError("preflight failed, nothing installed: " + "; ".join(
                    f"{c.name}: {c.detail} ({c.advice})" for c in failed), vm=self.vm.name, step="preflight")

    def _capture(self, since: dt.datetime | None) -> tuple[object, str]:
        return self._read_capture(self._take_capture(since))

    def _take_capture(self, since: dt.datetime | None) -> ScriptResult:
        from patchgate.probes.batch import compose_capture

        assert self.session is not None
        script = compose_capture(since=since)
        session = self.session

        def run() -> ScriptResult:
            return session.run(script, timeout=self.ctx.lab.timeouts.capture)

        return self._retry("capture", run)  # type: ignore[return-value]

    def _read_capture(self, result: ScriptResult) -> tuple[object, str]:
        from patchgate.probes.batch import parse_capture

        try:
            capture = parse_capture(result, vm=self.vm.name)
        except LabError as exc:
            raise exc.at(vm=self.vm.name)
        return capture.posture, result.text

    def _read_while_installing(self, result: ScriptResult, step: Step) -> "cf.Future[tuple[object, str]]":
        """Read the baseline capture on a thread of its own while this VM stages and installs: the install
        does not wait for the capture to be parsed. The capture is taken before
        the install either way; one that cannot be read fails its step and breaks the VM after the install
        (the VM is restored, and lab trouble never gives a verdict)."""
        reading: cf.Future[tuple[object, str]] = cf.Future()

        def read() -> None:
            try:
                reading.set_result(self._read_capture(result))
            except BaseException as exc:  # noqa: BLE001 - handed to the VM's thread, which raises it
                step.ok = False
                step.detail = redactor.redact(str(exc))
                self._emit(step.name, "fail", step.detail)
                if isinstance(exc, LabError):
                    exc.at(vm=self.vm.name, step=step.name)
                reading.set_exception(exc)

        threading.Thread(target=read, name=f"patchgate-read-{self.vm.name}", daemon=True).start()
        return reading

    def _install(self) -> None:
        from patchgate.remoting.staging import describe_fetched, stage_and_install

        ctx, obs = self.ctx, self.obs
        if ctx.wsus is not None:  # docs/wsus.md: the server approves, then installs as a package itself
            from patchgate.wsus.steps import approve_for_lab, install_via_wsus

            if self.vm.name != ctx.wsus.server:
                return install_via_wsus(self)
            approve_for_lab(self)
        with self.step("install", limit="install", mutates=True) as record:
            assert self.session is not None
            ctx.ledger.record("install", vm=self.vm.name, kb=ctx.candidate.kb)
            started = _now()
            with self._watch_transfer():
                result = stage_and_install(self.session, ctx.candidate, timeout=ctx.lab.timeouts.install,
                                           source=ctx.packages, stage_timeout=ctx.lab.timeouts.stage)
            obs.install = InstallRecord(kb=ctx.candidate.kb, exit_code=result.exit_code,
                                        restart_needed=result.restart_needed, output=list(result.output),
                                        started_at=started, finished_at=_now(), packages=list(result.packages))
            record.detail = (f"{describe_fetched(result.fetched)}; exit {result.exit_code}, restart "
                             f"{'required' if result.restart_needed else 'not required'}")

    def _watch_transfer(self) -> contextlib.AbstractContextManager[object]:
        """Bytes and rate in the progress view while the VM pulls the packages (a source that counts them)."""
        sent = getattr(self.ctx.packages, "sent", None)
        if self.ctx.transfer is None or sent is None:
            return contextlib.nullcontext()
        total = sum(self.ctx.candidate.package_path(p).stat().st_size for p in self.ctx.candidate.packages
                    if self.ctx.candidate.package_path(p).is_file())
        return TransferWatch(self.vm.name, lambda: int(sent(self.vm.name)), total, self.ctx.transfer)

    def _reboot(self) -> None:
        ctx, vm, obs = self.ctx, self.vm, self.obs
        with self.step("reboot", mutates=True) as record:
            record.detail = "the install demanded a restart (RestartNeeded / 3010)"
            if self.session is not None:
                self.session.close()
                self.session = None
            ctx.ledger.record("reboot", vm=vm.name)
            ctx.hypervisor.reboot(vm)
            obs.rebooted = True
        with self.step("wait_ready_after_reboot"):
            try:
                obs.endpoint = ctx.hypervisor.wait_ready(vm, ctx.lab.timeouts.reboot)
            except LabTimeout as exc:
                raise LabTimeout(f"guest did not come back after the restart within "
                                 f"{ctx.lab.timeouts.reboot:g}s ({exc.detail})", vm=vm.name) from None
        try:
            self._connect("reconnect")
            with self.step("remoting_after_restart"):
                self._answers()
        except LabError as exc:
            # The hypervisor sees the guest running with an address, but its remoting refuses: the update broke
            # management (management.reachable), not the lab. Only a guest the hypervisor cannot see is lab trouble.
            endpoint, settings = obs.endpoint, ctx.lab.remoting.settings
            obs.unreachable = {"guest": "running (the hypervisor reports it ready)",
                               "address": endpoint.address if endpoint else None,
                               "port": (endpoint.port if endpoint and endpoint.port else None)
                               or getattr(settings, "port", None) or (5986 if getattr(settings, "ssl", False) else 5985),
                               "error": redactor.redact(str(exc))}

    def _answers(self) -> None:
        """One small pipeline through the new session (with the lab's retries): connecting alone proves nothing
        on transports that connect lazily."""
        script = Script(name="hello", body="$env:COMPUTERNAME\n")
        session = self.session
        assert session is not None
        self._retry("remoting", lambda: session.run(script, timeout=self.ctx.lab.timeouts.capture))

    def _settle(self, *, before_baseline: bool = False) -> None:
        """Wait (bounded by timeouts.settle) until the guest has settled, before the baseline (the guest has just
        booted from its snapshot) and before the post capture; see patchgate.run.settle."""
        from patchgate.probes.batch import compose_capture
        from patchgate.run.settle import awaited, wait_settled

        ctx = self.ctx
        with self.step("settle_baseline" if before_baseline else "settle") as record:
            assert self.session is not None
            script = compose_capture(areas=["services"])

            def look() -> dict[str, object]:
                with ctx.semaphores["capture"]:  # a look is a (small) capture: it honours limits.capture
                    result = self.session.run(script, timeout=ctx.lab.timeouts.capture)  # type: ignore[union-attr]
                    answered = _now()
                posture, _text = self._read_capture(result)
                self._measured(posture, answered)  # each look measures the guest's clock again
                return posture.area("services").services  # type: ignore[attr-defined]

            # the shortest settle is guest time; a hypervisor whose guests run time faster says so (the twin does)
            at_least = 0.0 if before_baseline else \
                ctx.lab.timeouts.settle_min * getattr(ctx.hypervisor, "guest_time_scale", 1.0)
            try:
                wanted = None if before_baseline else awaited(self.obs.baseline.area("services").services)
                record.detail = wait_settled(look, wanted, ctx.lab.timeouts.settle, ctx.stop, at_least=at_least,
                                             failed_looks=ctx.lab.retries.count + 1).detail
            except LabError as exc:  # the post capture and the checks still say what they see
                record.detail = f"could not look at the guest's services: {exc}"

    def _wsus_sync(self) -> None:
        from patchgate.actions import action_script
        from patchgate.remoting.base import result_json

        with self.step("wsus_sync", mutates=True) as record:
            assert self.session is not None
            script = action_script("wsus-sync", TimeoutSeconds=int(self.ctx.lab.timeouts.install))
            result = self.session.run(script, timeout=self.ctx.lab.timeouts.install)
            if result.had_errors and not result.output:
                # A sync that cannot even start is a WSUS regression, recorded for the wsus.sync invariant.
                self.obs.wsus_sync = {"Result": "NotStarted", "ErrorText": "; ".join(result.errors)}
            else:
                self.obs.wsus_sync = result_json(result)
            record.detail = f"result {self.obs.wsus_sync.get('Result')}"

    # ------------------------------------------------------------ restore

    def _restore_pair(self) -> None:
        """The paired control's VM is restored with its VM (never kept: only the candidate's VM is evidence)."""
        pair = getattr(self, "_pair", None)
        if pair is None:
            return
        seen = len(pair.obs.steps)
        pair.restore()
        self.obs.steps.extend(pair.obs.steps[seen:])
        if pair.obs.restore_error is not None and self.obs.restore_error is None:
            self.obs.restore_error = pair.obs.restore_error

    def restore(self, *, keep: bool = False) -> None:
        """Close the session and revert; runs in every outcome. Errors are recorded, not raised."""
        self._restore_pair()
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
            self.session = None
        if not self._touched:
            return
        ctx, vm, obs = self.ctx, self.vm, self.obs
        if keep:
            obs.kept = True
            log.warning("%s: kept as it is for debugging (--keep-on-failure); revert it with 'patchgate reap' "
                        "or by hand", vm.name)
            ctx.ledger.record("kept", vm=vm.name)
            return
        record = Step(name="restore", started_at=_now())
        obs.steps.append(record)
        began = time.monotonic()
        self._emit("restore", "start")
        try:
            with ctx.semaphores["revert"]:  # a restore is a revert: the lab's revert limit holds for it too
                self._fence_restore()
                if getattr(ctx.hypervisor, "keep_failure_snapshots", False) and obs.error is not None:
                    obs.failure_snapshot = ctx.hypervisor.keep_failure_snapshot(vm, ctx.run_id)
                with_retries("restore", lambda: ctx.hypervisor.revert(vm), ctx.lab.retries, vm=vm.name)
            ctx.hypervisor.mark_in_use(vm, None)
            record.duration = time.monotonic() - began
            obs.restored = True
            self._touched = False  # a later restore (at the end of the run) has nothing left to do
            ctx.ledger.record("restored", vm=vm.name)
            self._emit("restore", "ok", f"{record.duration:.2f}s")
        except Exception as exc:  # never let cleanup of one VM stop the others
            error = exc.at(vm=vm.name, step="restore") if isinstance(exc, LabError) else LabError(
                f"unexpected {exc.__class__.__name__} during restore", vm=vm.name, step="restore")
            obs.restore_error = error
            record.ok, record.detail = False, redactor.redact(str(error))
            record.duration = time.monotonic() - began
            if isinstance(exc, LeaseLost):
                self._touched = False  # the VM is another run's now: nothing more this run may do to it
            self._emit("restore", "fail", record.detail)
