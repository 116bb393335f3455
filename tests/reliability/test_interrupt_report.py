"""pytest's report of an interrupt never fails on a frame without a line number (CPython 3.11 leaves one where a
signal lands at an instruction that has none; pytest-dev/pytest-xdist#1196): with patchgate's plugin the report is
made without that frame, and no traceback of pytest's own is printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LINELESS_INTERRUPT = '''
import sys, types

def test_interrupted():
    lineless = types.TracebackType(None, sys._getframe(), 10 ** 6, -1)  # its tb_lineno is None
    assert lineless.tb_lineno is None
    raise KeyboardInterrupt("signal 2").with_traceback(lineless)
'''


def _pytest(folder: Path, *plugins: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_interrupted.py").write_text(LINELESS_INTERRUPT, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins,
                           str(folder / "test_interrupted.py")], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def test_the_interrupt_report_leaves_out_a_frame_without_a_line_number(tmp_path: Path) -> None:
    ended = _pytest(tmp_path)
    assert ended.returncode == 2, ended.stdout + ended.stderr  # pytest's "interrupted"
    assert "KeyboardInterrupt: signal 2" in ended.stdout, ended.stdout
    assert "Traceback" not in ended.stdout + ended.stderr, ended.stdout + ended.stderr


def test_without_the_plugin_pytest_itself_fails_on_that_frame(tmp_path: Path) -> None:
    """The case above is real: the same interrupt without patchgate's plugin breaks pytest's report."""
    ended = _pytest(tmp_path, "-p", "no:patchgate_pytest.plugin")
    assert "TypeError" in ended.stdout + ended.stderr, ended.stdout + ended.stderr
