"""Show where each VM is while the lifecycles run, without garbling pytest's own output.

Three ways, chosen once per session (``PATCHGATE_PROGRESS=live|lines|off`` overrides the choice):

* **live** (a terminal): a rich table of every VM's current step, the time in that step and the time since the
  VM started, redrawn four times a second. It is drawn while the lifecycles prepare, *before* pytest reports any
  test: in one process the runs' lifecycles start in ``pytest_runtestloop`` and the table stays until every VM is
  ready for its checks (or broken); then it is erased, one line says how long preparing took, and the tests
  report as usual. At the end a summary table gives each VM's outcome and lifecycle time.
* **lines** (no terminal, e.g. CI logs): one line per step transition, ``[  12.3s] ws25-hp-01  install  ok (4.02s)``.

While a VM pulls the candidate's packages, its row (or, without a terminal, a line every TRANSFER_EVERY seconds
and one when the last byte moved) shows the bytes moved and the rate: ``moving: 412.0 MiB of 1.0 GiB, 96.3 MiB/s``.
* under **pytest-xdist** workers cannot write to the terminal. Each worker appends its transitions as JSON lines
  to a file the controller named in ``workerinput["patchgate_progress"]``; the controller follows those files
  from a background thread and shows the transitions as lines, or in the live table until the first test
  report arrives (then silently, with the summary table at the end).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

import pytest

from patchgate_pytest.state import active_configs, run_state

ProgressFn = Callable[[str, str, str], None]
MODES = ("live", "lines", "off")
ENV = "PATCHGATE_PROGRESS"
WORKER_KEY = "patchgate_progress"
MARKS = {"ok": "ok", "fail": "FAILED", "start": "started", "info": "info", "retry": "retrying", "wait": "waiting"}
LEASE_WAIT_EVERY = 30.0  # seconds between "waiting for a lease" lines without a terminal
TRANSFER_EVERY = 10.0  # seconds between "moving" lines without a terminal


# ---------------------------------------------------------------- the board: where every VM is


@dataclass
class VmProgress:
    vm: str
    started: float  # wall clock (time.time()) of the VM's first transition
    step: str = ""
    state: str = ""
    step_started: float = 0.0
    updated: float = 0.0
    failed_step: str | None = None
    steps: int = 0
    retries: int = 0  # of the current step
    note: str = ""  # while waiting for a lease: who holds the VM
    done: bool = False  # its restore finished (or failed)
    moved: int = 0  # while its packages move: bytes so far, of ``to_move``, at ``rate`` bytes/s
    to_move: int = 0
    moved_at: float = 0.0
    rate: float = 0.0
    moving_shown: float = 0.0  # when the last "moving" line was written (lines mode)


@dataclass
class Board:
    """The latest transition of every VM; fed by lifecycle threads (or worker files), read by the views."""

    origin: float = field(default_factory=time.time)
    vms: dict[str, VmProgress] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, vm: str, step: str, state: str, at: float | None = None) -> tuple[VmProgress, float]:
        """Record a transition; returns the VM's record and how long the step took (0 for a start)."""
        now = at if at is not None else time.time()
        with self.lock:
            record = self.vms.get(vm)
            if record is None:
                record = self.vms[vm] = VmProgress(vm=vm, started=now)
            took = 0.0
            if state == "start":
                record.step_started = now
                record.steps += 1
                record.retries = 0
            elif state == "retry":
                record.retries += 1
            elif state == "wait" and record.step != step:
                record.step_started = now
            elif record.step == step:
                took = max(0.0, now - record.step_started)
            record.step, record.state, record.updated = step, state, now
            record.moved = record.to_move = 0  # a new transition: nothing is moving any more
            record.rate = 0.0
            if state == "fail" and record.failed_step is None and step != "restore":
                record.failed_step = step
            if step == "restore" and state in ("ok", "fail"):
                record.done = True
            return record, took

    def moving(self, vm: str, moved: int, total: int, at: float) -> VmProgress:
        """Bytes moved so far for ``vm``'s packages; the rate is smoothed over the last samples."""
        with self.lock:
            record = self.vms.get(vm)
            if record is None:
                record = self.vms[vm] = VmProgress(vm=vm, started=at)
            elapsed = at - record.moved_at
            if record.moved and elapsed > 0 and moved >= record.moved:
                sample = (moved - record.moved) / elapsed
                record.rate = sample if not record.rate else 0.5 * record.rate + 0.5 * sample
            record.moved, record.to_move, record.moved_at = moved, total, at
            return VmProgress(**vars(record))

    def snapshot(self) -> list[VmProgress]:
        with self.lock:
            return [VmProgress(**vars(r)) for r in sorted(self.vms.values(), key=lambda r: r.vm)]


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def moving_text(record: VmProgress) -> str:
    """``412.0 MiB of 1.0 GiB, 96.3 MiB/s`` (the rate once there are two samples)."""
    text = f"{_size(record.moved)} of {_size(record.to_move)}" if record.to_move else _size(record.moved)
    return text + (f", {_size(record.rate)}/s" if record.rate else "")


def format_line(board: Board, vm: str, step: str, state: str, took: float, at: float, retries: int = 0) -> str:
    mark = MARKS.get(state, state)
    if state == "retry":
        mark = f"retrying (attempt {retries + 1})"
    elif state in ("ok", "fail") and retries:
        mark += f" after {retries + 1} attempts"
    timing = f" ({took:.2f}s)" if state in ("ok", "fail") else ""
    return f"[{at - board.origin:7.1f}s] {vm:<24} {step:<24} {mark}{timing}"


def render_table(board: Board, now: float | None = None):
    """The live view: one row per VM."""
    from rich.table import Table

    now = now if now is not None else time.time()
    table = Table(title="patchgate: preparing the lab", title_justify="left", expand=False)
    for column, justify in (("VM", "left"), ("step", "left"), ("state", "left"), ("in step", "right"),
                            ("elapsed", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in board.snapshot():
        style = "red" if r.failed_step else ("green" if r.step == "capture_post" and r.state == "ok" else "")
        in_step = f"{now - r.step_started:5.1f}s" if r.state in ("start", "wait") else ""
        mark = f"waiting: {r.note}" if r.state == "wait" else MARKS.get(r.state, r.state)
        if r.moved and r.state == "start":
            mark = f"moving: {moving_text(r)}"
        table.add_row(r.vm, r.step, mark, in_step, f"{now - r.started:6.1f}s",
                      style=style)
    return table


# ---------------------------------------------------------------- choosing the way


def progress_mode(config: pytest.Config) -> str:
    """live, lines or off for this process (a worker always forwards)."""
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen in MODES:
        return chosen
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return "off"
    return "live" if reporter.isatty else "lines"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class Progress:
    """One per pytest process; keeps the board and writes transitions the way the mode asks."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.board = Board()
        self.mode = progress_mode(config)
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.live = None  # rich.live.Live while the table is on screen
        self.live_done = False
        self._write_lock = threading.Lock()
        self._suspend_lock = threading.Lock()
        self._suspend_depth = 0
        self._suspension = None
        self._forward: TextIO | None = None
        self._holding = False  # while pytest reports results, lines wait so they never split its rows
        self._held: list[str] = []
        if _is_worker(config):
            target = config.workerinput.get(WORKER_KEY)  # type: ignore[attr-defined]
            if target and self.mode != "off":
                self._forward = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed at unconfigure
            self.mode = "forward" if self._forward else "off"

    # -- fed by lifecycle threads (or, on the xdist controller, by the follower thread)

    def transition(self, vm: str, step: str, state: str, at: float | None = None) -> None:
        at = at if at is not None else time.time()
        if self.mode == "forward":
            assert self._forward is not None
            with self._write_lock:
                self._forward.write(json.dumps({"vm": vm, "step": step, "state": state, "at": at}) + "\n")
            return
        record, took = self.board.update(vm, step, state, at)
        if self.mode == "lines" and state != "start":
            line = format_line(self.board, vm, step, state, took, at, record.retries)
            with self._write_lock:
                if self._holding:
                    self._held.append(line)
                    return
            self.write_line(line)

    def lease_wait(self, vm: str, holder: str, waited: float, timeout: float) -> None:
        """A VM this run needs is leased by another run: shown in the live table, or as a line at once and then
        every LEASE_WAIT_EVERY seconds (CI logs)."""
        note = f"leased by {holder}; waited {waited:.0f}s of {timeout:g}s"
        if self.mode == "forward":
            assert self._forward is not None
            with self._write_lock:
                self._forward.write(json.dumps({"vm": vm, "step": "lease", "state": "wait", "at": time.time(),
                                                "holder": holder, "waited": waited, "timeout": timeout}) + "\n")
            return
        with self.board.lock:
            record = self.board.vms.get(vm)
            last = record.updated if record is not None and record.state == "wait" else None
        first = last is None
        self.board.update(vm, "lease", "wait")
        with self.board.lock:
            self.board.vms[vm].note = note
            if not first:
                self.board.vms[vm].updated = last  # type: ignore[assignment] - the time of the last line shown
        if self.mode == "live" and self.live is not None:
            return
        if first or time.time() - (last or 0) >= LEASE_WAIT_EVERY:
            with self.board.lock:
                self.board.vms[vm].updated = time.time()
            self.write_line(f"[{time.time() - self.board.origin:7.1f}s] {vm:<24} {'lease':<24} waiting: {note}")

    def transfer(self, vm: str, moved: int, total: int, at: float | None = None) -> None:
        """Bytes of ``vm``'s packages moved so far (the lifecycle's TransferWatch): in its live row, or as a line
        at once, every TRANSFER_EVERY seconds and when the last byte moved."""
        at = at if at is not None else time.time()
        if self.mode == "forward":
            assert self._forward is not None
            with self._write_lock:
                self._forward.write(json.dumps({"vm": vm, "step": "install", "state": "transfer", "at": at,
                                                "moved": moved, "total": total}) + "\n")
            return
        record = self.board.moving(vm, moved, total, at)
        if self.mode != "lines":
            return
        if record.moving_shown and at - record.moving_shown < TRANSFER_EVERY and moved < total:
            return
        with self.board.lock:
            self.board.vms[vm].moving_shown = at
        self.write_line(f"[{at - self.board.origin:7.1f}s] {vm:<24} {record.step or 'install':<24} "
                        f"moving: {moving_text(record)}")

    def hold(self) -> None:
        """From now on keep transition lines (restores that overlap the checks) until ``release``."""
        with self._write_lock:
            self._holding = True

    def release(self) -> None:
        with self._write_lock:
            self._holding = False
            held, self._held = self._held, []
        for line in held:
            self.write_line(line)

    def write_line(self, line: str) -> None:
        if self.reporter is None:
            return
        with self._write_lock:
            with self._suspended():
                writer = self.config.get_terminal_writer()  # there is a reporter, so there is its writer
                if writer.width_of_current_line:
                    writer.line()  # xdist's rows of result letters do not end themselves as pytest's do
                self.reporter.write_line(line)

    @contextmanager
    def _suspended(self) -> Iterator[None]:
        """pytest's capture off while we write; counted across threads, so a line written by a lifecycle
        thread never switches capture back on under the live table the main thread is showing."""
        if self.capture is None:
            yield
            return
        with self._suspend_lock:
            if self._suspend_depth == 0:
                self._suspension = self.capture.global_and_fixture_disabled()
                self._suspension.__enter__()
            self._suspend_depth += 1
        try:
            yield
        finally:
            with self._suspend_lock:
                self._suspend_depth -= 1
                if self._suspend_depth == 0 and self._suspension is not None:
                    suspension, self._suspension = self._suspension, None
                    suspension.__exit__(None, None, None)

    # -- the live table

    def start_live(self) -> None:
        if self.mode != "live" or self.live is not None or self.live_done or self.reporter is None:
            return
        from rich.console import Console
        from rich.live import Live

        with self._suspended():
            self.reporter.ensure_newline()
            console = Console(file=sys.stdout, force_terminal=True)  # the real terminal: capture is off here
            self.live = Live(get_renderable=lambda: render_table(self.board), console=console, transient=True,
                             refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def stop_live(self) -> None:
        live, self.live = self.live, None
        if live is not None:
            with self._suspended():
                live.stop()
        self.live_done = True

    def watch(self, until_ready: Callable[[float], object]) -> None:
        """The live table (live mode) or the transition lines (lines mode) until ``until_ready(timeout)``
        returns something other than None (it waits up to ``timeout`` seconds; short, so Ctrl-C stays prompt)."""
        with self._suspended():
            self.start_live()
            try:
                while until_ready(0.5) is None:
                    pass
            finally:
                self.stop_live()

    def close(self) -> None:
        self.release()
        self.stop_live()
        if self._forward is not None:
            self._forward.close()
            self._forward = None


PROGRESS_KEY = pytest.StashKey[Progress]()


def get_progress(config: pytest.Config) -> Progress:
    progress = config.stash.get(PROGRESS_KEY, None)
    if progress is None:
        progress = config.stash[PROGRESS_KEY] = Progress(config)
    return progress


def lease_wait_for(config: pytest.Config) -> Callable[[str, str, float, float], None] | None:
    """The callback the lease acquisition reports a busy VM to (patchgate.leases.base.lease_waits)."""
    progress = get_progress(config)
    return None if progress.mode == "off" else progress.lease_wait


def transfer_for(config: pytest.Config) -> Callable[[str, int, int], None] | None:
    """The callback LabRun's lifecycles report bytes moved to, ``(vm, moved, total)``."""
    progress = get_progress(config)
    return None if progress.mode == "off" else progress.transfer


def progress_for(config: pytest.Config) -> ProgressFn | None:
    """The callback LabRun hands to every lifecycle: ``(vm, step, state)`` with state start|ok|fail|info."""
    progress = get_progress(config)
    if progress.mode == "off":
        return None
    return lambda vm, step, state: progress.transition(vm, step, state)


# ---------------------------------------------------------------- one process: prepare before tests report


def _vm_items(session: pytest.Session) -> bool:
    from patchgate_pytest.lab import VM_PARAM

    return any(VM_PARAM in getattr(getattr(item, "callspec", None), "params", {}) for item in session.items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    """In one process (no xdist), start every lifecycle now and show the live table or the transition lines until
    the first VM is ready for its checks; pytest's own test loop then runs each VM's checks once that VM is
    ready (its ``obs`` waits for it), and the transitions that happen meanwhile are printed after pytest's
    report, so the two never interleave."""
    config = session.config
    state = run_state(config)
    xdist_controller = config.pluginmanager.has_plugin("dsession")
    if (state is None or _is_worker(config) or xdist_controller or config.option.collectonly
            or (session.testsfailed and not config.option.continue_on_collection_errors)
            or not _vm_items(session)):
        yield
        return
    from patchgate.run.interrupts import interrupted
    from patchgate_pytest.lab import finish_lab_run, start_lab_run, while_no_vm_is_ready

    progress = get_progress(config)
    run = None
    began = time.monotonic()
    try:
        progress.start_live()  # on a terminal the table also shows a wait for leases other runs hold
        run = start_lab_run(config, session)
        names = list(run.lifecycles)
        meanwhile = while_no_vm_is_ready(session, run)
        progress.watch(lambda timeout: run.first_prepared(names, timeout) or meanwhile())
    except BaseException as exc:
        progress.stop_live()
        run = run or state.lab_run  # Ctrl-C inside start_lab_run: the run exists, its VMs may be reverting
        if run is not None:
            run.interrupt()
            finish_lab_run(config, session, run)
        if not isinstance(exc, KeyboardInterrupt) and interrupted(exc):
            raise KeyboardInterrupt from None  # an interrupt that came out as another error: pytest's "interrupted"
        raise
    ready = [lc for lc in run.lifecycles.values() if lc.prepared.is_set()]
    broken = sum(1 for lc in ready if lc.obs.error is not None)
    if progress.mode == "live":
        took = time.monotonic() - began
        if len(ready) == len(run.lifecycles):
            progress.write_line(f"patchgate: {len(ready)} VM(s) prepared in {took:.1f}s ({broken} broken); "
                                "running the checks")
        else:
            progress.write_line(f"patchgate: {len(ready)} of {len(run.lifecycles)} VM(s) prepared in {took:.1f}s "
                                f"({broken} broken); each VM's checks run once it is ready, its steps are listed "
                                "after the report")
    progress.hold()
    try:
        yield
    finally:
        finish_lab_run(config, session, run)  # no-op when the lab_run fixture already finished it


# ---------------------------------------------------------------- xdist: workers forward, the controller shows


class Follower:
    """On the xdist controller: follows the workers' progress files and feeds the controller's Progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.folder = Path(tempfile.mkdtemp(prefix="patchgate-progress-"))
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="patchgate-progress", daemon=True)
        self._thread.start()

    def file_for(self, worker_id: str) -> str:
        path = self.folder / f"{worker_id}.jsonl"
        path.touch()
        return str(path)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.drain()

    def drain(self) -> None:
        for path in sorted(self.folder.glob("*.jsonl")):
            try:
                with path.open("r", encoding="utf-8") as handle:
                    handle.seek(self._offsets.get(path, 0))
                    chunk = handle.read()
                    self._offsets[path] = handle.tell()
            except OSError:
                continue
            text = self._partial.pop(path, "") + chunk
            lines = text.split("\n")
            if lines[-1]:
                self._partial[path] = lines[-1]  # a line still being written
            for line in lines[:-1]:
                self._feed(line)

    def _feed(self, line: str) -> None:
        try:
            event = json.loads(line)
            vm, step, state, at = str(event["vm"]), str(event["step"]), str(event["state"]), float(event["at"])
        except (ValueError, KeyError, TypeError):
            return
        if state == "transfer":  # a worker's VM is pulling its packages
            self.progress.transfer(vm, int(event.get("moved", 0)), int(event.get("total", 0)), at)
            return
        if state == "wait":  # a worker waits for a lease another run holds
            self.progress.lease_wait(vm, str(event.get("holder", "")), float(event.get("waited", 0.0)),
                                     float(event.get("timeout", 0.0)))
            return
        self.progress.start_live()
        self.progress.transition(vm, step, state, at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.drain()
        for path in self.folder.glob("*.jsonl"):
            path.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass


FOLLOWER_KEY = pytest.StashKey[Follower]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller, once per worker it starts
    config = node.config
    if run_state(config) is None:
        return
    progress = get_progress(config)
    if progress.mode == "off":
        return
    follower = config.stash.get(FOLLOWER_KEY, None)
    if follower is None:
        follower = config.stash[FOLLOWER_KEY] = Follower(progress)
    node.workerinput[WORKER_KEY] = follower.file_for(str(node.gateway.id))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The first test report ends the live table (on the controller it would otherwise overdraw the report) and
    holds transition lines until the report is done, so they never split a row of results."""
    for config in active_configs():
        progress = config.stash.get(PROGRESS_KEY, None)
        if progress is None or progress.mode == "forward":
            continue
        if progress.live is not None:
            progress.stop_live()
        progress.hold()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every transition is shown before the verdict, the failures and the summary: one ordered stream."""
    follower = session.config.stash.get(FOLLOWER_KEY, None)
    if follower is not None:
        follower.close()  # the workers are done: show every transition they wrote before the summary
    progress = session.config.stash.get(PROGRESS_KEY, None)
    if progress is not None and progress.mode != "forward":
        progress.release()  # the lines held while pytest reported results (restores that overlapped the checks)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """In live mode the transitions after the table were not shown: one row per VM says how it ended."""
    progress = config.stash.get(PROGRESS_KEY, None)
    if progress is not None:
        progress.release()  # the lines held while pytest reported results (restores that overlapped the checks)
    if progress is None or progress.mode != "live" or not progress.board.vms:
        return
    terminalreporter.section("patchgate lifecycles", sep="-")
    for r in progress.board.snapshot():
        outcome = f"broken at {r.failed_step}" if r.failed_step else "prepared"
        restored = "restored" if r.done and r.state == "ok" else ("restore FAILED" if r.done else "not restored")
        terminalreporter.write_line(f"{r.vm:<24} {outcome:<28} {restored:<14} {r.updated - r.started:7.1f}s")


def pytest_unconfigure(config: pytest.Config) -> None:
    progress = config.stash.get(PROGRESS_KEY, None)
    if progress is not None:
        progress.close()
