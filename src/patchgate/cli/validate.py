"""``patchgate validate``: check the inputs, run the suites in a child pytest, print the verdict."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchgate import __version__
from patchgate.cli.common import EPILOG, LAB_HELP, ROLES, add_catalog_argument, fail
from patchgate.cli.verdict import print_verdict
from patchgate.config.inputs import INPUTS_CHECKED_BY_PARENT
from patchgate.evidence.hashing import PACKAGE_HASHES_ENV, exported_hashes
from patchgate.errors import EXIT_CONFIG, EXIT_INCONCLUSIVE, ConfigError
from patchgate.labkinds import CATALOG_OPTION
from patchgate.run.interrupts import Forwarder, stop_signals_blocked
from patchgate.cli.table import summary

if TYPE_CHECKING:
    import subprocess


def add_command(sub: Any) -> None:
    validate = sub.add_parser("validate", help=summary("validate"),
                              description="Restore every VM of the lab, install the candidate, run the suites, and "
                              "write gate.json, junit.xml and allure-results/ to the output folder. Arguments "
                              "after '--' go to pytest (e.g. -k, -m firewall, -n 4). pytest runs with the plugins "
                              "the gate needs (pytest-xdist, allure-pytest, testinfra) and no others; add one with "
                              "'-- -p module'. Output is captured at the Python level (--capture=sys); "
                              "'-- --capture=fd' captures file descriptors as plain pytest does.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_argument("--lab", required=True, help=LAB_HELP)
    validate.add_argument("--candidate", required=True, help="candidate file, or a KB id under candidates/")
    validate.add_argument("--out", help="output folder, new or empty: a folder holding files (e.g. an "
                          "earlier run) is refused with exit 4 (default: a new folder under reports/)")
    validate.add_argument("--suites", default="suites", metavar="DIR",
                          help="the suites to run, the policy the gate enforces (default: suites/ here; its "
                          "parent folder is pytest's rootdir, with the suites' conftest.py)")
    add_catalog_argument(validate)
    validate.add_argument("--vm", action="append", default=[], metavar="NAME",
                          help="only this VM of the lab (repeatable)")
    validate.add_argument("--role", action="append", default=[], metavar="ROLE",
                          help="only VMs with this role (repeatable): " + ", ".join(ROLES))
    validate.add_argument("--ring", action="append", default=[], metavar="RING",
                          help="only VMs in this ring, as the lab file names them, e.g. ring0 (repeatable)")
    validate.add_argument("--seed", type=int, default=None, metavar="N",
                          help="seed of a simulated lab's noise (hypervisor.settings.noise: realistic); default: "
                               "the lab file's seed, else a fresh one, recorded in run-manifest.json")
    validate.add_argument("--control", action="store_true",
                          help="also take each VM through the same lifecycle without the candidate (lab `control: "
                               "reboot`; a lab with `control: {vm: paired}` runs it on each VM's control_pair); "
                               "checks that fail there too are reported as noise seen on the control")
    validate.add_argument("--keep-on-failure", action="store_true",
                          help="leave VMs whose checks failed as they are, for debugging (says so in the output)")
    validate.add_argument("pytest_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    validate.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from patchgate.config.inputs import new_run_id, resolve_candidate, resolve_lab
    from patchgate.evidence.outdir import require_fresh_out_dir
    from patchgate.paths import state_dir

    lab_path = resolve_lab(args.lab)
    candidate_path = resolve_candidate(args.candidate)
    for folder in args.kind_catalogs:
        if not Path(folder).is_dir():
            raise ConfigError(f"{CATALOG_OPTION}: not a directory", file=folder)
    suites = Path(args.suites)
    if not suites.is_dir():
        raise ConfigError("no suites folder here: run patchgate in the folder that holds suites/ (and its "
                          "conftest.py), or name it with --suites DIR", file=str(suites))
    root = suites.resolve().parent
    state_dir()  # ledgers, leases and twin disks live there: an unusable folder is said now, not mid-run
    args.fresh_seed = secrets.randbelow(2**31)  # used when neither --seed nor the lab file names one
    # exit 4 before anything starts; Ctrl-C meanwhile is held back and raised once the check is over: pydantic
    # builds its validators here, and an interrupt landing inside that build would be reported and then ignored
    with stop_signals_blocked():
        lab, candidate = _check_inputs(args, lab_path, candidate_path)
    run_id = new_run_id()
    out = Path(args.out) if args.out else Path("reports") / f"{run_id}-{candidate.kb}-{lab.name}"
    require_fresh_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder: {exc.strerror or exc}", file=str(out)) from None
    with Forwarder() as forwarder:
        with stop_signals_blocked():  # the child unblocks them once it can stop cleanly (patchgate.run.interrupts)
            child = _start_suites(_suite_command(args, root, lab_path, candidate_path, out, run_id), cwd=root)
        forwarder.attach(child)
        print(f"patchgate {__version__}: validating {candidate.kb} on lab '{lab.name}' -> {out}", flush=True)
        code = _wait(child)
    gate_file = out / "gate.json"
    if int(code) == EXIT_CONFIG:
        return EXIT_CONFIG
    if not gate_file.is_file():
        return fail(f"no gate.json was written (pytest exit {int(code)}): verdict inconclusive",
                     EXIT_INCONCLUSIVE)
    gate = json.loads(gate_file.read_text(encoding="utf-8"))
    print_verdict(gate, gate_file)
    return int(gate["exit_code"])


def _check_inputs(args: argparse.Namespace, lab_path: Path, candidate_path: Path) -> tuple[Any, Any]:
    """Everything the suites would refuse, found here first so it is one clear line (exit 4)."""
    from patchgate.labkinds import KindOptions, check_kind_inputs, prepare_lab
    from patchgate.run.labrun import RunSelection, load_inputs
    from patchgate.secrets.env import require_env_credentials

    lab, candidate = load_inputs(lab_path, candidate_path)
    lab = prepare_lab(lab, seed=getattr(args, "seed", None), fresh_seed=getattr(args, "fresh_seed", None))
    RunSelection(vms=args.vm, roles=args.role, rings=args.ring).apply(lab)
    require_env_credentials(lab)
    check_kind_inputs(lab, KindOptions(catalogs=[Path(f) for f in args.kind_catalogs]))  # the kind's own files
    return lab, candidate


# The pytest plugins the suites run with, and no others: a plugin that happens to be installed beside patchgate
# cannot change how the gate runs (add one with `-- -p module`), and pytest does not scan every installed package
# for plugins at start-up (about a sixth of a second of each run).
SUITE_PLUGINS = ("xdist.plugin", "allure_pytest.plugin", "testinfra.plugin", "patchgate_pytest.plugin")
# and pytest's own plugins a gate run does without: the cache (a gate run keeps nothing between runs) and the
# unraisable-exception warnings, whose end-of-run garbage collections walk the whole harness heap (every VM's
# observations; about 1 s per collection at 32 VMs) after the verdict is written. An exception raised in a finalizer
# is still printed, by Python's own hook.
SUITE_DISABLED = ("no:cacheprovider", "no:unraisableexception")
NO_PLUGIN_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
# The checks only read finished observations and print nothing below Python, so capturing sys.stdout/stderr is
# enough; pytest's default (file descriptors) swaps descriptors and reads a temporary file around every phase of
# every check, a third of each check's cost. `-- --capture=fd` or `-- -s` restore pytest's own choice.
SUITE_CAPTURE = "--capture=sys"


def _suite_command(args: argparse.Namespace, root: Path, lab_path: Path, candidate_path: Path, out: Path,
                   run_id: str) -> list[str]:
    command = [sys.executable, "-m", "pytest", str(root / "suites"), "--rootdir", str(root),
               *(arg for plugin in (*SUITE_DISABLED, *SUITE_PLUGINS) for arg in ("-p", plugin)),
               "--lab", str(lab_path.resolve()), "--candidate", str(candidate_path.resolve()),
               "--out", str(out.resolve()), "--run-id", run_id,
               "--junitxml", str(out / "junit.xml"), "--alluredir", str(out / "allure-results"), SUITE_CAPTURE]
    for folder in args.kind_catalogs:
        command += [CATALOG_OPTION, str(Path(folder).resolve())]
    for flag, values in (("--vm", args.vm), ("--role", args.role), ("--ring", args.ring)):
        for value in values:
            command += [flag, value]
    if args.keep_on_failure:
        command.append("--keep-on-failure")
    if getattr(args, "seed", None) is not None:
        command += ["--seed", str(args.seed)]
    if getattr(args, "control", False):
        command.append("--control")
    if getattr(args, "fresh_seed", None) is not None:
        command += ["--fresh-seed", str(args.fresh_seed)]
    if not any(a.startswith("--tb") for a in args.pytest_args):
        command.append("--tb=short")  # the failure message and its table, without the test's source
    return command + list(args.pytest_args)


def _start_suites(command: list[str], *, cwd: Path) -> "subprocess.Popen[bytes]":
    """The suites in a child pytest; the inputs were checked here, so the child need not check them again."""
    import os
    import subprocess

    env = dict(os.environ)
    env[NO_PLUGIN_AUTOLOAD] = "1"  # SUITE_PLUGINS are named on the command line
    env[INPUTS_CHECKED_BY_PARENT] = "1"
    env[PACKAGE_HASHES_ENV] = exported_hashes()  # the packages hashed by the inputs check are not hashed again
    return subprocess.Popen(command, cwd=cwd, env=env)


def _wait(child: "subprocess.Popen[bytes]") -> int:
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries wait() for us
            continue
