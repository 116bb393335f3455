"""One validation run: load the files, take the leases, run every VM's lifecycle at once, restore at the end."""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchgate.run.components import LabComponents, build_components
from patchgate.config import Candidate, Lab, VmSpec, load_candidate, load_lab
from patchgate.errors import ConfigError, LabError, LeaseLost
from patchgate.config.inputs import new_run_id
from patchgate.run.ledger import Ledger
from patchgate.run.lifecycle import LifecycleContext, ProgressCallback, VmLifecycle
from patchgate.run.transfer import TransferCallback
from patchgate.remoting.staging import PackageSource
from patchgate.model.observations import VmObservation
from patchgate.secrets.redact import redactor
from patchgate.wsus.external import ExternalApproval
from patchgate.wsus.holders import SharedApproval
from patchgate.wsus.round import WsusRound

log = logging.getLogger("patchgate.run")


@dataclass
class RunSelection:
    """QA's narrowing of a run: by VM name, role or ring (empty = everything)."""

    vms: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    rings: list[str] = field(default_factory=list)

    def apply(self, lab: Lab) -> list[VmSpec]:
        names = {vm.name for vm in lab.vms}
        for name in self.vms:
            if name not in names:
                raise ConfigError(f"--vm {name}: no such VM in lab '{lab.name}' (VMs: {', '.join(sorted(names))})",
                                  file=str(lab.source))
        for flag, wanted, known in (("--role", self.roles, {vm.role for vm in lab.vms}),
                                    ("--ring", self.rings, {vm.ring for vm in lab.vms})):
            for value in wanted:
                if value not in known:
                    raise ConfigError(f"{flag} {value}: no VM of lab '{lab.name}' has it (the lab's "
                                      f"{flag[2:]}s: {', '.join(sorted(known))})", file=str(lab.source))
        chosen = [vm for vm in lab.vms
                  if (not self.vms or vm.name in self.vms)
                  and (not self.roles or vm.role in self.roles)
                  and (not self.rings or vm.ring in self.rings)]
        if not chosen:
            raise ConfigError("the --vm/--role/--ring selection matches no VM of the lab", file=str(lab.source))
        return chosen


class PrepareJob:
    """One VM's prepare as the pool runs it. ``finish`` settles every job it knows: it waits for a prepare that
    began, and calls off one that did not (queued behind the lab's limits, or never submitted because Ctrl-C landed
    between the bookkeeping and the submission), so no prepare ever reverts a VM after its restore."""

    def __init__(self, lifecycle: VmLifecycle) -> None:
        self.lifecycle = lifecycle
        self.future: cf.Future | None = None
        self._lock = threading.Lock()
        self._state = "waiting"  # -> "running", or -> "called off"
        self._done = threading.Event()

    def __call__(self) -> VmObservation | None:
        with self._lock:
            if self._state != "waiting":
                return None
            self._state = "running"
        try:
            return self.lifecycle.prepare()
        finally:
            self._done.set()

    def call_off(self) -> bool:
        """Call the prepare off if it has not begun; False when it has (then :meth:`wait` for it)."""
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = "called off"
        vm = self.lifecycle.vm.name
        self.lifecycle.never_prepared(LabError("the run finished before this VM's lifecycle began", vm=vm))
        return True

    def wait(self) -> None:
        self._done.wait()


def load_inputs(lab_path: Path, candidate_path: Path) -> tuple[Lab, Candidate]:
    return load_lab(lab_path), load_candidate(candidate_path)


class LabRun:
    """Owns the components, leases and lifecycles of one run. ``start`` then ``observation`` then ``finish``."""

    def __init__(self, lab: Lab, candidate: Candidate, *, selection: RunSelection | None = None,
                 kind_catalogs: list[Path] | None = None, run_id: str | None = None,
                 progress: ProgressCallback | None = None, keep_on_failure: bool = False,
                 restore_when_captured: bool = False, kind_inputs_checked: bool = False,
                 lifecycle_class: type[VmLifecycle] = VmLifecycle,
                 transfer: TransferCallback | None = None, xdist_worker: bool = False) -> None:
        self.lab = lab
        self.xdist_worker = xdist_worker  # one of several pytest-xdist processes of the run
        self.lifecycle_class = lifecycle_class  # what each VM goes through (patchgate doctor: no install)
        self.kind_inputs_checked = kind_inputs_checked  # build_components: the twin's process may load them
        self.candidate = candidate
        self.vms = (selection or RunSelection()).apply(lab)
        self.kind_catalogs = kind_catalogs or []
        self.run_id = run_id or new_run_id()
        self.progress = progress
        self.transfer = transfer  # bytes each VM pulled so far (the progress view)
        self.keep_on_failure = keep_on_failure
        self.restore_when_captured = restore_when_captured and not keep_on_failure
        self.stop = threading.Event()
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.finished_at: dt.datetime | None = None
        self.components: LabComponents | None = None
        self.lifecycles: dict[str, VmLifecycle] = {}
        self.run_error: LabError | None = None
        self._pool: cf.ThreadPoolExecutor | None = None
        self._prepares: dict[str, PrepareJob] = {}
        self._closing: threading.Thread | None = None  # finish(close_in_background=True)
        self._leases: list = []
        self._lease_manager = None
        self._ctx: LifecycleContext | None = None
        self._ensure_lock = threading.RLock()
        self._prepared_changed = threading.Condition()
        self.ledger: Ledger | None = None
        self.remoting_counters: dict[str, dict[str, int]] = {}
        self._finished = False
        self.packages: PackageSource | None = None  # the run's content server or share (remoting/sources.py)
        self.external_wsus: ExternalApproval | None = None  # wsus.server outside the lab: approved, then undone

    # ------------------------------------------------------------ start

    def start(self, vm_names: list[str] | None = None) -> None:
        """Build components and start the prepare of ``vm_names`` (default: every selected VM) concurrently.
        Never raises LabError: lab trouble at this level marks the affected VMs broken."""
        try:
            self.components = build_components(self.lab, kind_catalogs=self.kind_catalogs, stop=self.stop,
                                               kind_inputs_checked=self.kind_inputs_checked)
            self.components.hypervisor.connect()
            if self.lifecycle_class.installs:
                from patchgate.remoting.sources import package_source

                self.packages = package_source(self.lab, self.run_id, self.components.secrets)
        except LabError as exc:
            self.run_error = exc
            for vm in self.vms:
                self._broken_stub(vm, exc)
            return
        self.ledger = Ledger(self.run_id, self.lab.name, str(self.lab.source) if self.lab.source else None)
        self.ledger.open()
        started = vm_names if vm_names is not None else [vm.name for vm in self.vms]
        self._ctx = LifecycleContext(lab=self.lab, candidate=self.candidate, hypervisor=self.components.hypervisor,
                                     remoting=self.components.remoting, secrets=self.components.secrets,
                                     run_id=self.run_id, ledger=self.ledger, stop=self.stop, progress=self.progress,
                                     restore_when_captured=self.restore_when_captured,
                                     on_prepared=self._note_prepared, confirm_lease=self.confirm_lease,
                                     wsus=self._wsus_round(started), packages=self.packages,
                                     transfer=self.transfer)
        self._pool = cf.ThreadPoolExecutor(max_workers=min(self.lab.limits.total, len(self.vms)),
                                           thread_name_prefix="patchgate-vm")
        if self.external_wsus is not None:
            self.external_wsus.start()
        self.ensure(started)

    def _wsus_round(self, started: list[str]) -> WsusRound | None:
        """``install: {via: wsus}``: the approval the lab's WSUS server VM and the other VMs share (one process:
        a server VM another pytest-xdist worker runs approves nothing here, and the clients say so). A WSUS outside
        the lab is approved by the run itself (patchgate.wsus.external), once for all the workers."""
        if self.lab.install.via != "wsus" or self.lab.wsus is None:
            return None
        server = self.lab.wsus.server_name
        clients = [vm.name for vm in self.vms if vm.name != server and vm.name in started]
        if self.lab.wsus.external is None:
            return WsusRound(self.lab.wsus, clients, server_in_run=server in started, stop=self.stop)
        round_ = WsusRound(self.lab.wsus, clients, server_in_run=True, stop=self.stop)
        assert self.ledger is not None
        if self.lifecycle_class.installs:  # patchgate doctor installs nothing: nothing to approve
            # under pytest-xdist the workers share one approval, and the last one to leave undoes it
            shared = SharedApproval(self.run_id) if self.xdist_worker else None
            self.external_wsus = ExternalApproval(self.lab, round_, self.ledger, self.candidate.kb, shared)
        return round_

    def ensure(self, vm_names: list[str]) -> None:
        """Take the leases of VMs not started yet and start their prepare (under pytest-xdist a worker learns
        its VMs as tests arrive). Idempotent."""
        with self._ensure_lock:
            wanted = [vm for vm in self.vms if vm.name in vm_names and vm.name not in self.lifecycles]
            if not wanted:
                return
            if self._finished or self.stop.is_set():
                for vm in wanted:
                    self._broken_stub(vm, LabError("the run was stopping; the VM was not started", vm=vm.name))
                return
            if self._ctx is None or self._pool is None:  # start() failed: everything is broken already
                for vm in wanted:
                    self._broken_stub(vm, self.run_error or LabError("the run could not start", vm=vm.name))
                return
            try:
                pairs = [vm.control_pair.name for vm in wanted if vm.control_pair is not None]  # their controls
                self._leases.append(self._take_leases([vm.name for vm in wanted] + pairs))
            except LabError as exc:
                for vm in wanted:
                    self._broken_stub(vm, exc)
                return
            for vm in wanted:
                job = self._prepares[vm.name] = PrepareJob(self.lifecycle_class(self._ctx, vm))
                self.lifecycles[vm.name] = job.lifecycle
                job.future = self._pool.submit(job)
            self._ctx.remoting.prepare()  # the transport loads while the lab reverts, not during the leases

    def _stop_packages(self) -> None:
        """The content server lives as long as the run: its tokens fetch nothing after this."""
        stop = getattr(self.packages, "stop", None)
        if stop is not None:
            stop()

    def _keep_counters(self) -> None:
        """WSMan request counters of the lab's endpoints (where its kind counts them), kept as evidence of one
        pipeline per capture."""
        parts = self.components.parts if self.components else None
        if parts is None or parts.remoting_counters is None:
            return
        for name in self.lifecycles:
            try:
                self.remoting_counters[name] = parts.remoting_counters(name)
            except KeyError:
                continue

    def _broken_stub(self, vm: VmSpec, error: LabError) -> None:
        """A VM that never started its lifecycle (no lease, no components): broken, nothing to restore."""
        lifecycle = VmLifecycle.__new__(VmLifecycle)
        lifecycle.vm = vm
        lifecycle.obs = VmObservation(vm=vm, error=error)
        lifecycle.session = None
        lifecycle.prepared = threading.Event()
        lifecycle.prepared.set()
        lifecycle._touched = False
        self.lifecycles[vm.name] = lifecycle
        self._note_prepared(vm.name)

    def _take_leases(self, names: list[str]):
        from patchgate.leases import build_lease_manager

        if self._lease_manager is None:
            # one Vault login serves credentials and leases when the secrets provider has a session
            session = getattr(self.components.secrets, "session", None) if self.components else None
            self._lease_manager = build_lease_manager(self.lab, session=session)
        parts = self.components.parts if self.components else None
        if parts is not None and parts.before_leases is not None:
            parts.before_leases(self._lease_manager, names)  # a simulated lab may play a rival run here
        lease = self._lease_manager.new_lease(self.run_id)
        self._leases.append(lease)  # before anything is taken: finish() gives back whatever it holds
        taken: cf.Future = cf.Future()
        context = contextvars.copy_context()  # the progress view's lease_waits hook goes along
        taking = threading.Thread(target=context.run, args=(self._take, lease, names, taken),
                                  name="patchgate-leases", daemon=True)
        taking.start()
        try:
            return taken.result()
        except KeyboardInterrupt:
            self.stop.set()  # the thread stops waiting, gives back what it took, and ends
            taking.join()
            raise

    def _take(self, lease: Any, names: list[str], taken: cf.Future) -> None:
        """Take the leases on a thread of their own: an interrupt (which Python raises in the main thread) can
        then never fall between a VM being taken and the lease knowing it."""
        try:
            lease.take(names, timeout=self.lab.timeouts.ready, stop=self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            taken.set_exception(exc)
        else:
            taken.set_result(lease)

    def confirm_lease(self, vm_name: str) -> None:
        """The fence of every mutating step (patchgate.leases.base): LeaseLost unless this run holds the VM."""
        for lease in self._leases:
            if lease.holds(vm_name) or vm_name in lease.lost:
                lease.confirm(vm_name)
                return
        raise LeaseLost(f"run {self.run_id} holds no lease of VM {vm_name}", vm=vm_name)

    def _note_lost_leases(self) -> None:
        """Every VM whose lease this run lost is broken, whatever its checks said (docs/vault.md)."""
        for lease in self._leases:
            for name, reason in lease.lost.items():
                lifecycle = self.lifecycles.get(name)
                if lifecycle is not None:
                    lifecycle.obs.lease_lost = reason

    # ------------------------------------------------------------ observe

    def observation(self, vm_name: str) -> VmObservation:
        """Block until the VM's post capture is taken (the suites' fixtures call this). The VM's thread may go on
        to restore it meanwhile; the checks only read the finished observation."""
        self.ensure([vm_name])
        lifecycle = self.lifecycles[vm_name]
        lifecycle.prepared.wait()
        job = self._prepares.get(vm_name)
        if job is not None and job.future is not None and job.future.done():
            job.future.result()  # a prepare thread that died of something else than lab trouble: raise it here
        return lifecycle.obs

    def _note_prepared(self, _vm_name: str) -> None:
        with self._prepared_changed:
            self._prepared_changed.notify_all()

    def wait_closed(self) -> None:
        """Return once the components are closed (after ``finish(close_in_background=True)``)."""
        if self._closing is not None:
            self._closing.join()

    def first_prepared(self, vm_names: list[str], timeout: float) -> str | None:
        """The first of ``vm_names`` (in that order) whose observation is final, waiting up to ``timeout``
        seconds for one; None when none is ready by then (the progress view shows the lab until then)."""
        deadline = time.monotonic() + timeout
        with self._prepared_changed:
            while True:
                for name in vm_names:
                    lifecycle = self.lifecycles.get(name)
                    if lifecycle is not None and lifecycle.prepared.is_set():
                        return name
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._prepared_changed.wait(remaining)

    def wait_all(self) -> dict[str, VmObservation]:
        return {name: self.observation(name) for name in self.lifecycles}

    def session(self, vm_name: str):
        return self.lifecycles[vm_name].session

    # ------------------------------------------------------------ finish

    def interrupt(self) -> None:
        """Ctrl-C / SIGTERM: stop starting new steps; ``finish`` still restores everything."""
        self.stop.set()

    def finish(self, *, failed_vms: set[str] | None = None, close_in_background: bool = False) -> None:
        """Restore every touched VM (concurrently), release leases, close components. Idempotent.

        ``close_in_background``: the components (the twin's process and its listeners, a vCenter or Vault
        session) close on a thread of their own while the caller writes the evidence; ``wait_closed()`` joins
        it (and the interpreter waits for it at exit in any case). Every VM is restored and every lease
        released before this returns, either way."""
        with self._ensure_lock:
            if self._finished:
                return
            self._finished = True
        failed_vms = failed_vms or set()
        if self._pool is not None:
            # prepare threads stop at their next step once stop is set; wait for them before restoring, and
            # a prepare still queued (or never submitted: Ctrl-C between) is called off, never run after a restore
            for job in [job for job in self._prepares.values() if not job.call_off()]:
                job.wait()
            if self.external_wsus is not None:  # every client is done: nothing reverts this server, so undo now
                self.external_wsus.finish()
            restores = [self._pool.submit(lc.restore, keep=self.keep_on_failure and (
                name in failed_vms or lc.obs.broken)) for name, lc in self.lifecycles.items()]
            for future in restores:
                future.result()
            self._pool.shutdown(wait=True)
        self._note_lost_leases()
        for lease in self._leases:
            try:
                lease.release()
            except LabError as exc:
                self.run_error = self.run_error or exc
        if self._lease_manager is not None:
            try:
                self._lease_manager.close()  # before the components: it may share their Vault session
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's outcome
                log.warning("closing the lease manager failed: %s", redactor.redact(str(exc)))
        interrupted = self.stop.is_set()
        self.stop.set()  # releases anything still waiting on the lab (a twin install that hangs, a long poll)
        self._stop_packages()
        if self.components is not None:
            self._keep_counters()
            if close_in_background:
                self._closing = threading.Thread(target=self.components.close, name="patchgate-close-components")
                self._closing.start()
            else:
                self.components.close()
        if self.ledger is not None:
            self.ledger.close("interrupted" if interrupted else "finished")
        self.finished_at = dt.datetime.now(dt.timezone.utc)
        log.info("run %s finished; secrets registered for redaction: %d", self.run_id, redactor.count)
