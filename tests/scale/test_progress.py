"""Progress output: one line per step transition without a terminal, a live table that leaves pytest's own
report intact on one, and transitions forwarded from pytest-xdist workers to the controller."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from rich.console import Console

from patchgate_pytest.progress import Board, Follower, Progress, format_line, render_table
from scale.conftest import PATCHGATE, ROOT, Run

LINE = re.compile(r"^\[\s*(?P<t>\d+\.\d)s\] (?P<vm>\S+)\s+(?P<step>\S+)\s+(?P<mark>ok|FAILED) \((?P<took>\d+\.\d\d)s\)$")

ROW = re.compile(r"^suites/test_\w+\.py ")  # a row of test results (not a traceback's file:line)


def transitions(text: str) -> list[re.Match[str]]:
    return [m for line in text.splitlines() if (m := LINE.match(line.strip()))]


def test_one_line_per_step_transition_without_a_terminal(single: Run) -> None:
    lines = transitions(single.proc.stdout)
    expected = [(vm["name"], step["name"]) for vm in single.gate()["vms"] for step in vm["steps"]]
    assert sorted((m["vm"], m["step"]) for m in lines) == sorted(expected)
    assert all(m["mark"] == "ok" for m in lines)
    by_vm: dict[str, list[str]] = {}
    for m in lines:
        by_vm.setdefault(m["vm"], []).append(m["step"])
    for vm in single.gate()["vms"]:  # in the order the lifecycle ran them
        assert by_vm[vm["name"]] == [s["name"] for s in vm["steps"]]


def test_lifecycle_lines_never_split_the_test_report(single: Run) -> None:
    """Transitions before the first check come first; those that happen while checks run (the other VMs'
    last steps, the restores) are printed after the report, never between its rows."""
    out = single.proc.stdout.splitlines()
    rows = [i for i, line in enumerate(out) if ROW.match(line)]
    first_result, last_result = min(rows), max(rows)
    lines = [i for i, line in enumerate(out) if LINE.match(line.strip())]
    assert lines and min(lines) < first_result  # the lab phase is shown as it happens
    assert all(i < first_result or i > last_result for i in lines)
    for line in out:
        if ROW.match(line):  # the result rows are never split by a progress line
            assert re.fullmatch(r"suites/test_\w+\.py [.sFE]+\s*(\[\s*\d+%\])?", line.rstrip()), line


def test_xdist_workers_forward_their_transitions(run_validate) -> None:
    run = run_validate("xdist-progress", "--lab", "twin", "--candidate", "KB5070893", "--", "-n", "2")
    lines = transitions(run.proc.stdout)
    expected = [(vm["name"], step["name"]) for vm in run.gate()["vms"] for step in vm["steps"]]
    assert sorted((m["vm"], m["step"]) for m in lines) == sorted(expected), run.log
    assert {m["vm"] for m in lines if m["step"] == "restore"} == {vm["name"] for vm in run.gate()["vms"]}


def _read_pty(argv: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(main)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_live_table_on_a_terminal_leaves_the_report_intact(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PATCHGATE_PROGRESS"}
    env.update({"PATCHGATE_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "120", "LINES": "40",
                "TERM": "xterm-256color"})
    code, text = _read_pty([PATCHGATE, "validate", "--lab", "twin", "--candidate", "KB5070893",
                            "--out", str(tmp_path / "out")], env)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
    assert code == 0, plain[-3000:]
    assert "patchgate: preparing the lab" in plain  # the live table was drawn
    assert re.search(r"patchgate: (4|[1-3] of 4) VM\(s\) prepared in \d+\.\ds \(0 broken\)", plain)
    assert not transitions(plain)  # no per-step lines on a terminal
    gate = json.loads((tmp_path / "out" / "gate.json").read_text(encoding="utf-8"))
    assert gate["verdict"] == "approve"
    rows = [line for line in plain.splitlines() if ROW.match(line)]
    # each VM's checks run together, so a suite's row comes back for every VM; every row is whole
    assert all(re.fullmatch(r"suites/test_\w+\.py [.s]+\s*\[\s*\d+%\]", r.rstrip()) for r in rows), rows
    assert {r.split()[0] for r in rows} == {f"suites/{path.name}" for path in (ROOT / "suites").glob("test_*.py")}, rows
    summary = plain.split("patchgate lifecycles", 1)[1]
    for vm in gate["vms"]:
        assert re.search(rf"{vm['name']}\s+prepared\s+restored", summary), summary


def test_board_and_line_format() -> None:
    board = Board(origin=100.0)
    board.update("vm1", "revert", "start", at=101.0)
    record, took = board.update("vm1", "revert", "ok", at=103.5)
    assert took == 2.5 and record.step == "revert"
    assert format_line(board, "vm1", "revert", "ok", took, 103.5) == (
        "[    3.5s] vm1                      revert                   ok (2.50s)")
    board.update("vm1", "install", "start", at=104.0)
    board.update("vm1", "install", "fail", at=105.0)
    board.update("vm1", "restore", "start", at=105.0)
    record, _ = board.update("vm1", "restore", "ok", at=106.0)
    assert record.failed_step == "install" and record.done


def test_live_table_shows_each_vm_step_and_elapsed_time() -> None:
    board = Board(origin=0.0)
    board.update("ws25-hp-01", "install", "start", at=10.0)
    board.update("ws25-mbr-01", "capture_post", "start", at=11.0)
    board.update("ws25-mbr-01", "capture_post", "ok", at=12.0)
    console = Console(record=True, width=100)
    console.print(render_table(board, now=14.0))
    text = console.export_text()
    assert re.search(r"ws25-hp-01\s+│\s+install\s+│\s+started\s+│\s+4\.0s\s+│\s+4\.0s", text), text
    assert re.search(r"ws25-mbr-01\s+│\s+capture_post\s+│\s+ok\s+│\s+│\s+3\.0s", text), text


class _Collect(Progress):
    def __init__(self) -> None:  # noqa: D107 - no pytest config: only what the follower calls
        self.mode = "lines"
        self.live = None
        self.seen: list[tuple[str, str, str, float | None]] = []

    def start_live(self) -> None:
        pass

    def transition(self, vm: str, step: str, state: str, at: float | None = None) -> None:
        self.seen.append((vm, step, state, at))


def test_follower_reads_whole_lines_only() -> None:
    collected = _Collect()
    follower = Follower(collected)  # type: ignore[arg-type]
    try:
        path = Path(follower.file_for("gw0"))
        event = json.dumps({"vm": "vm1", "step": "revert", "state": "start", "at": 1.0})
        with path.open("a", encoding="utf-8") as handle:
            handle.write(event + "\n" + event[:10])
            handle.flush()
            follower.drain()
            assert collected.seen == [("vm1", "revert", "start", 1.0)]  # the half line waits
            handle.write(event[10:].replace("start", "ok") + "\nnot json\n")
        follower.drain()
        assert collected.seen[-1] == ("vm1", "revert", "ok", 1.0)
        assert len(collected.seen) == 2
    finally:
        follower.close()
    assert not follower.folder.exists()


def test_progress_is_a_plugin_of_the_suites() -> None:
    from patchgate_pytest import plugin

    assert "patchgate_pytest.progress" in plugin.pytest_plugins


def test_a_retried_step_is_shown_as_retried() -> None:
    board = Board(origin=100.0)
    board.update("vm1", "revert", "start", at=101.0)
    record, _ = board.update("vm1", "revert", "retry", at=102.0)
    assert format_line(board, "vm1", "revert", "retry", 0.0, 102.0, record.retries).endswith("retrying (attempt 2)")
    record, took = board.update("vm1", "revert", "ok", at=104.0)
    assert format_line(board, "vm1", "revert", "ok", took, 104.0, record.retries).endswith(
        "ok after 2 attempts (3.00s)")
    record, _ = board.update("vm1", "install", "start", at=105.0)
    assert record.retries == 0


class _Lines(Progress):
    def __init__(self) -> None:  # noqa: D107 - no pytest config: lines mode, written lines kept
        self.mode, self.live, self.board, self.lines = "lines", None, Board(), []
        import threading

        self._write_lock = threading.Lock()

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def test_a_lease_wait_is_said_at_once_and_then_every_30_seconds_without_a_terminal() -> None:
    progress = _Lines()
    progress.lease_wait("vm1", "run r-1 (pid 42 on host ci-7)", 0.1, 600)
    assert len(progress.lines) == 1 and progress.lines[0].endswith(
        "vm1                      lease                    waiting: leased by run r-1 (pid 42 on host ci-7); "
        "waited 0s of 600s")
    progress.lease_wait("vm1", "run r-1 (pid 42 on host ci-7)", 2.0, 600)
    assert len(progress.lines) == 1  # not every retry: CI logs get one line per 30 s
    progress.board.vms["vm1"].updated -= 31  # as if the last line was shown 31 s ago
    progress.lease_wait("vm1", "run r-1 (pid 42 on host ci-7)", 31.0, 600)
    assert len(progress.lines) == 2 and "waited 31s of 600s" in progress.lines[1]


def test_the_live_table_shows_who_holds_a_vm_the_run_waits_for() -> None:
    progress = _Lines()
    progress.mode = "live"
    progress.live = object()  # the table is on screen: no lines
    progress.lease_wait("ws25-hp-01", "run r-1 (pid 42 on host ci-7)", 12.0, 600)
    assert progress.lines == []
    console = Console(record=True, width=160)
    console.print(render_table(progress.board))
    assert re.search(r"ws25-hp-01\s+│\s+lease\s+│\s+waiting: leased by run r-1", console.export_text())


def test_a_second_run_on_a_busy_lab_says_who_holds_the_vm(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load((ROOT / "labs" / "twin.yaml").read_text(encoding="utf-8"))
    data["name"] = "twin-busy"
    data["timeouts"]["ready"] = 3
    for vm in data["vms"]:
        if vm["name"] == "ws25-hp-01":
            vm["faults"] = ["lease-held"]
    lab = tmp_path / "twin-busy.yaml"
    lab.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PATCHGATE_PROGRESS"}
    env["PATCHGATE_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.run([PATCHGATE, "validate", "--lab", str(lab), "--candidate", "KB5070893", "--vm", "ws25-hp-01",
                           "--out", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    waits = [line for line in proc.stdout.splitlines()
             if re.match(r"^\[\s*\d+\.\ds\] ws25-hp-01\s+lease\s+waiting: leased by ", line)]
    assert waits and "of 3s" in waits[0], proc.stdout[-3000:]


def test_a_moving_package_shows_bytes_and_rate_in_the_vms_row() -> None:
    board = Board(origin=0.0)
    board.update("ws25-hp-01", "install", "start", at=10.0)
    board.moving("ws25-hp-01", 100 << 20, 1 << 30, at=11.0)
    record = board.moving("ws25-hp-01", 300 << 20, 1 << 30, at=13.0)
    assert record.rate == 100 << 20  # (300 - 100) MiB in 2 s
    console = Console(record=True, width=120)
    console.print(render_table(board, now=14.0))
    text = console.export_text()
    assert re.search(r"ws25-hp-01\s+│\s+install\s+│\s+moving: 300\.0 MiB of 1\.0 GiB, 100\.0 MiB/s", text), text
    record, _ = board.update("ws25-hp-01", "install", "ok", at=20.0)
    assert record.moved == 0  # the step ended: nothing shown as moving any more


def test_a_workers_transfer_reaches_the_controller() -> None:
    class Moving(_Collect):
        def transfer(self, vm: str, moved: int, total: int, at: float | None = None) -> None:
            self.seen.append((vm, "transfer", f"{moved}/{total}", at))

    collected = Moving()
    follower = Follower(collected)  # type: ignore[arg-type]
    try:
        path = Path(follower.file_for("gw1"))
        path.write_text(json.dumps({"vm": "vm1", "step": "install", "state": "transfer", "at": 2.0,
                                    "moved": 10, "total": 40}) + "\n")
        follower.drain()
        assert collected.seen == [("vm1", "transfer", "10/40", 2.0)]
    finally:
        follower.close()


def test_the_transfer_watch_reports_what_moved_since_it_started() -> None:
    from patchgate.run.transfer import TransferWatch

    counter = {"sent": 500}
    seen: list[tuple[str, int, int]] = []
    with TransferWatch("vm1", lambda: counter["sent"], 2000, lambda *a: seen.append(a), every=60):
        counter["sent"] += 2000  # the VM pulled its package while the watch ran
    assert seen == [("vm1", 2000, 2000)]  # reported when the watch ends, even between samples
