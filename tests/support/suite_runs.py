"""The suites run as plain ``pytest suites --lab ... --candidate ...`` (the product's documented pytest entry point),
each in a fresh process forked from a warm one.

Why: the invariant tests run the gate about two hundred times. A ``patchgate validate`` subprocess starts two
interpreters that import pytest, pydantic, pypsrp, the engine and the twin, about three quarters of each run's CPU.
A ``forkserver`` (the standard library's) imports them once per test worker; every run is then a child forked from
it: a process of its own as a user's run is (its own signals, module state, threads, cwd and environment, nothing
left behind for the next run), without paying the imports again. Several runs go at once, as before.

Not pytester's in-process runs: those share one interpreter (module globals, signal handlers, the Allure plugin
manager) with the test session and with each other, and could not run side by side.

``patchgate validate`` itself (its input check, its exit codes, its closing lines) is tested through its CLI in
tests/e2e/; a caller that reads those lines asks for it with ``cli=True``.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from patchgate.cli.validate import NO_PLUGIN_AUTOLOAD, SUITE_CAPTURE, SUITE_DISABLED, SUITE_PLUGINS

ROOT = Path(__file__).resolve().parents[2]
PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
TIMEOUT_S = 240.0

# what every run imports, loaded once in the fork server (a module that fails to import there is simply imported by
# each run). Not the plugins (the -p modules and the pytest_plugins they list): pytest rewrites their asserts as it
# imports them, as in a user's run.
PRELOAD = ["pytest", "yaml", "pydantic", "psutil", "tenacity", "rich", "allure_commons", "allure_pytest.listener",
           "allure_pytest.utils", "testinfra.host", "patchgate.cli.validate", "patchgate.run.labrun",
           "patchgate.run.components", "patchgate.evidence.gate", "patchgate.evidence.report", "patchgate.probes.batch",
           "patchgate.remoting.psrp", "pypsrp.client", "psrpcore", "patchgate_twin.kind", "patchgate_twin.service",
           "patchgate_twin.catalog", "patchgate_twin.behaviours", "patchgate_twin.shell_impl",
           "patchgate_twin.wsman.endpoint"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


# what the test runner sets for its own test, which a run of the gate must not take for its own (a child pytest that
# sees PYTEST_XDIST_WORKER believes it is an xdist worker)
TEST_RUNNER_VARIABLES = ("PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST")


@dataclass(frozen=True)
class Finished:
    returncode: int
    output: str


def suites_command(lab: Path, candidate: Path, out: Path, extra: list[str]) -> list[str]:
    """What ``patchgate validate`` hands its child pytest (the same plugins, capture and output files)."""
    return [str(ROOT / "suites"), "--rootdir", str(ROOT),
            *(arg for plugin in (*SUITE_DISABLED, *SUITE_PLUGINS) for arg in ("-p", plugin)),
            "--lab", str(lab), "--candidate", str(candidate), "--out", str(out),
            "--junitxml", str(out / "junit.xml"), "--alluredir", str(out / "allure-results"), SUITE_CAPTURE,
            "--tb=short", *extra]


def run_suites(lab: Path, candidate: Path, out: Path, env: dict[str, str], *, extra: list[str] | None = None,
               pycache: Path | None = None, cli: bool = False) -> Finished:
    """One run of the gate with ``env`` as its whole environment (but the test runner's own variables); ``cli``:
    through ``patchgate validate`` (a subprocess, for the lines only the CLI prints)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in env.items() if k not in TEST_RUNNER_VARIABLES}
    if cli:
        proc = subprocess.run([PATCHGATE, "validate", "--lab", str(lab), "--candidate", str(candidate),
                               "--out", str(out), *(extra or [])], check=False, cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        return Finished(proc.returncode, proc.stdout + proc.stderr)
    log = out.parent / f"{out.name}.log"
    child = _CONTEXT.Process(target=_in_child, name=f"suites {out.parent.name}",
                             args=(suites_command(lab, candidate, out, extra or []),
                                   {**env, NO_PLUGIN_AUTOLOAD: "1"}, str(log), str(pycache) if pycache else None))
    child.start()
    child.join(TIMEOUT_S)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise TimeoutError(f"the suites' run for {out} did not end within {TIMEOUT_S:g}s; its output: {log}")
    return Finished(child.exitcode, log.read_text(encoding="utf-8", errors="replace") if log.is_file() else "")


def _in_child(args: list[str], env: dict[str, str], log: str, pycache: str | None) -> None:
    """The forked run: the caller's environment and cwd, stdout and stderr to ``log``, pytest's exit status (the
    gate's exit code) as the process's."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own streams
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    if pycache is not None:  # the suites' assertion-rewritten modules, shared by the runs of one test
        sys.pycache_prefix = pycache
        sys.dont_write_bytecode = False
    import pytest

    code = int(pytest.main(args))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
