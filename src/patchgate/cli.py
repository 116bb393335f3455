"""The ``patchgate`` command.

Exit codes (docs/exit-codes.md): 0 approve, 1 block, 2 inconclusive, 3 internal error, 4 usage or configuration
error, 130 interrupted before a verdict could be written.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn, Sequence

from patchgate import __version__
from patchgate.errors import EXIT_CONFIG, EXIT_INCONCLUSIVE, EXIT_INTERNAL, ConfigError, PatchgateError
from patchgate.inputs import INPUTS_CHECKED_BY_PARENT
from patchgate.twin.handoff import TwinHandoff

if TYPE_CHECKING:
    import subprocess

EPILOG = """exit codes: 0 approve, 1 block, 2 inconclusive, 3 internal error, 4 usage or configuration error

examples:
  patchgate validate --lab twin --candidate KB5070881
  patchgate validate --lab labs/vsphere.yaml --candidate candidates/KB5070893.yaml --role wsus-server -- -k sync
  patchgate gate reports/<run>            # print the verdict of a finished run, exit with its code
  patchgate report reports/<run>          # single-file Allure report + one-page summary
  patchgate verify reports/<run>          # re-hash every output against the evidence manifest
"""


class Parser(argparse.ArgumentParser):
    """argparse that exits 4 (usage error) with one line, as every patchgate usage error does."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _fail(message: str, code: int) -> int:
    print(f"patchgate: {_one_line(message)}", file=sys.stderr)
    return code


def _one_line(text: str) -> str:
    """Errors are one line: control characters a bad file smuggled into a value are shown escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


# ------------------------------------------------------------------ validate

def cmd_validate(args: argparse.Namespace) -> int:
    from patchgate.inputs import new_run_id, peek_names, resolve_candidate, resolve_lab
    from patchgate.paths import project_root, state_dir

    lab_path = resolve_lab(args.lab)
    candidate_path = resolve_candidate(args.candidate)
    for folder in args.twin_catalog:
        if not Path(folder).is_dir():
            raise ConfigError("--twin-catalog: not a directory", file=folder)
    root = project_root()
    if root is None:
        raise ConfigError("cannot find the suites: run patchgate from its checkout (the folder with suites/ "
                          "and conftest.py)")
    state_dir()  # ledgers, leases and twin disks live there: an unusable folder is said now, not mid-run
    # When the two files plainly name the candidate and the lab, the suites start at once and the files are
    # validated here meanwhile (two interpreters starting side by side); otherwise validation comes first.
    early = peek_names(lab_path, candidate_path)
    checked = None if early else _check_inputs(args, lab_path, candidate_path)
    kb, lab_name = early or (checked[1].kb, checked[0].name)  # type: ignore[index]
    run_id = new_run_id()
    args.fresh_seed = secrets.randbelow(2**31)  # used when neither --seed nor the lab file names one
    out = Path(args.out) if args.out else root / "reports" / f"{run_id}-{kb}-{lab_name}"
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder: {exc.strerror or exc}", file=str(out)) from None
    handoff = TwinHandoff()
    try:
        child = _start_suites(_suite_command(args, root, lab_path, candidate_path, out, run_id), cwd=root,
                              inputs_checked_here=early is not None, handoff=handoff)
        with _forwarding_signals(child):
            if checked is None:
                try:
                    checked = _check_inputs(args, lab_path, candidate_path)
                except BaseException:
                    child.kill()  # it stops at the same check before touching the lab; only its output differs
                    child.wait()
                    if created and out.is_dir() and not any(out.iterdir()):
                        out.rmdir()
                    raise
            _offer_twin(handoff, args, lab=checked[0], catalog=checked[2])
            print(f"patchgate {__version__}: validating {checked[1].kb} on lab '{checked[0].name}' -> {out}",
                  flush=True)
            code = _wait(child)
    finally:
        handoff.close()  # after the suites: they closed the twin's service (its disks), this ends its process
    gate_file = out / "gate.json"
    if int(code) == EXIT_CONFIG:
        return EXIT_CONFIG
    if not gate_file.is_file():
        return _fail(f"no gate.json was written (pytest exit {int(code)}): verdict inconclusive",
                     EXIT_INCONCLUSIVE)
    gate = json.loads(gate_file.read_text(encoding="utf-8"))
    _print_verdict(gate, gate_file)
    return int(gate["exit_code"])


def _check_inputs(args: argparse.Namespace, lab_path: Path, candidate_path: Path) -> tuple[Any, Any, Any]:
    """Everything the suites would refuse, found here first so it is one clear line (exit 4). Returns the lab,
    the candidate and, for a twin lab, its loaded catalogue (else None)."""
    from patchgate.labrun import RunSelection, load_inputs

    from patchgate.twin.noise import seeded

    lab, candidate = load_inputs(lab_path, candidate_path)
    lab = seeded(lab, explicit=getattr(args, "seed", None), fresh=getattr(args, "fresh_seed", None))
    RunSelection(vms=args.vm, roles=args.role, rings=args.ring).apply(lab)
    catalog = None
    if lab.hypervisor.kind == "twin" or getattr(lab.hypervisor.settings, "twin_guest", False):
        from patchgate.twin.lab import check_twin_inputs

        catalog = check_twin_inputs(lab, [Path(f) for f in args.twin_catalog])  # twin files and images: exit 4
    return lab, candidate, catalog


def _offer_twin(handoff: TwinHandoff, args: argparse.Namespace, *, lab: Any, catalog: Any) -> None:
    """Start the twin's process for the suites when they would start one (docs/twin.md, "Where the twin runs"):
    not under pytest-xdist, whose workers start one each."""
    from patchgate.components import twin_in_own_process

    xdist = any(arg.startswith(("-n", "--numprocesses", "--dist", "--tx")) for arg in args.pytest_args)
    if catalog is None or xdist or not twin_in_own_process(lab):
        handoff.decline()
        return
    handoff.offer(lab, catalog, [Path(f) for f in args.twin_catalog])


# The pytest plugins the suites run with, and no others: a plugin that happens to be installed beside patchgate
# cannot change how the gate runs (add one with `-- -p module`), and pytest does not scan every installed package
# for plugins at start-up (about a sixth of a second of each run).
SUITE_PLUGINS = ("xdist.plugin", "allure_pytest.plugin", "testinfra.plugin")
NO_PLUGIN_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
# The checks only read finished observations and print nothing below Python, so capturing sys.stdout/stderr is
# enough; pytest's default (file descriptors) swaps descriptors and reads a temporary file around every phase of
# every check, a third of each check's cost. `-- --capture=fd` or `-- -s` restore pytest's own choice.
SUITE_CAPTURE = "--capture=sys"


def _suite_command(args: argparse.Namespace, root: Path, lab_path: Path, candidate_path: Path, out: Path,
                   run_id: str) -> list[str]:
    command = [sys.executable, "-m", "pytest", str(root / "suites"), "--rootdir", str(root),
               "-p", "no:cacheprovider", *(arg for plugin in SUITE_PLUGINS for arg in ("-p", plugin)),
               "--lab", str(lab_path.resolve()), "--candidate", str(candidate_path.resolve()),
               "--out", str(out.resolve()), "--run-id", run_id,
               "--junitxml", str(out / "junit.xml"), "--alluredir", str(out / "allure-results"), SUITE_CAPTURE]
    for folder in args.twin_catalog:
        command += ["--twin-catalog", str(Path(folder).resolve())]
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


def _start_suites(command: list[str], *, cwd: Path, inputs_checked_here: bool,
                  handoff: TwinHandoff) -> "subprocess.Popen[bytes]":
    """The suites in a child pytest. When this process checks the inputs meanwhile, the child leaves reporting
    an input error to it (exit 4 without a second message)."""
    import os
    import subprocess

    env = dict(os.environ)
    env[NO_PLUGIN_AUTOLOAD] = "1"  # SUITE_PLUGINS are named on the command line
    env.update(handoff.child_env())
    if inputs_checked_here:
        env[INPUTS_CHECKED_BY_PARENT] = "1"
    child = subprocess.Popen(command, cwd=cwd, env=env, pass_fds=handoff.pass_fds)
    handoff.child_started()
    return child


@contextlib.contextmanager
def _forwarding_signals(child: "subprocess.Popen[bytes]") -> Iterator[None]:
    """Ctrl-C and SIGTERM are passed on to the child, so it restores the VMs, releases the leases and writes its
    partial gate.json before we report."""

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(child: "subprocess.Popen[bytes]") -> int:
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries wait() for us
            continue


def _print_verdict(gate: dict, gate_file: Path) -> None:
    print(f"\nverdict: {gate['verdict'].upper()} for {gate['candidate']['kb']} on lab {gate['lab']['name']}: "
          f"{gate['reason']}")
    shown: dict[tuple[str, str, str], list[str]] = {}
    for check in gate["checks"]:
        if check["status"] in ("failed", "broken", "waived"):
            headline = (check.get("message") or "").splitlines()[0] if check.get("message") else ""
            # lab trouble repeats one message per check of the VM: show it once with the invariants it broke
            key = (check["status"], check["vm"], headline if check["status"] == "broken" else check["invariant"])
            shown.setdefault(key, []).append(check["invariant"] if check["status"] == "broken" else headline)
    for (status, vm, what), details in shown.items():
        if status == "broken":
            print(f"  BROKEN  {vm:<16} {len(details)} check(s): {what}")
        else:
            print(f"  {status.upper():7} {vm:<16} {what:<32} {details[0]}")
    print(f"gate file: {gate_file}")


# ------------------------------------------------------------------ gate

def cmd_gate(args: argparse.Namespace) -> int:
    from patchgate.gate import read_gate

    gate_file = Path(args.dir) / "gate.json"
    if not gate_file.is_file():
        raise ConfigError("no gate.json in this folder (is it a patchgate output folder?)", file=str(args.dir))
    try:
        gate = read_gate(gate_file)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"not a valid gate file: {exc}", file=str(gate_file)) from None
    if args.json:
        print(json.dumps({k: gate[k] for k in ("verdict", "reason", "candidate", "lab", "run_id")}, indent=2))
    else:
        _print_verdict(gate, gate_file)
    return int(gate["exit_code"])


# ------------------------------------------------------------------ optional commands provided by other modules

def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args))

    return run


def build_parser() -> Parser:
    parser = Parser(prog="patchgate", description="Decide whether a Windows update may be released: restore lab "
                    "VMs from snapshots, install the candidate, check that hotpatch enrollment, WSUS sync, service "
                    "health and firewall posture survive, and give a verdict with evidence.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"patchgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    validate = sub.add_parser("validate", help="run the suites for a candidate on a lab and write the verdict",
                              description="Restore every VM of the lab, install the candidate, run the suites, and "
                              "write gate.json, junit.xml and allure-results/ to the output folder. Arguments "
                              "after '--' go to pytest (e.g. -k, -m firewall, -n 4). pytest runs with the plugins "
                              "the gate needs (pytest-xdist, allure-pytest, testinfra) and no others; add one with "
                              "'-- -p module'. Output is captured at the Python level (--capture=sys); "
                              "'-- --capture=fd' captures file descriptors as plain pytest does.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_argument("--lab", required=True, help="lab file, or a name under labs/ (e.g. twin)")
    validate.add_argument("--candidate", required=True, help="candidate file, or a KB id under candidates/")
    validate.add_argument("--out", help="output folder (default: a new folder under reports/)")
    validate.add_argument("--twin-catalog", action="append", default=[], metavar="DIR",
                          help="add twin images and behaviours from DIR (repeatable)")
    validate.add_argument("--vm", action="append", default=[], metavar="NAME", help="only this VM (repeatable)")
    validate.add_argument("--role", action="append", default=[], metavar="ROLE", help="only VMs with this role")
    validate.add_argument("--ring", action="append", default=[], metavar="RING", help="only VMs in this ring")
    validate.add_argument("--seed", type=int, default=None, metavar="N",
                          help="seed of the twin's real-world noise (hypervisor.settings.noise: realistic); default: "
                               "the lab file's seed, else a fresh one, recorded in run-manifest.json")
    validate.add_argument("--control", action="store_true",
                          help="also take each VM through the same lifecycle without the candidate (lab `control: "
                               "reboot`); checks that fail there too are reported as noise seen on the control")
    validate.add_argument("--keep-on-failure", action="store_true",
                          help="leave VMs whose checks failed as they are, for debugging (says so in the output)")
    validate.add_argument("pytest_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    validate.set_defaults(func=cmd_validate)

    gate = sub.add_parser("gate", help="print the verdict of a finished run and exit with its code (0/1/2)")
    gate.add_argument("dir", help="a run's output folder")
    gate.add_argument("--json", action="store_true", help="print the verdict as JSON")
    gate.set_defaults(func=cmd_gate)

    report = sub.add_parser("report", help="build the single-file Allure report and a one-page summary")
    report.add_argument("dir", help="a run's output folder")
    report.set_defaults(func=_lazy("patchgate.report", "cmd_report"))

    verify = sub.add_parser("verify", help="re-hash a run's outputs against its evidence manifest (and signature)")
    verify.add_argument("dir", help="a run's output folder")
    verify.add_argument("--public-key", help="verify the signature offline with this exported public key")
    verify.add_argument("--lab", help="lab file whose Vault verifies the signature online (default: the lab file "
                        "the run recorded in run-manifest.json)")
    verify.set_defaults(func=_lazy("patchgate.evidence", "cmd_verify"))

    leases = sub.add_parser("leases", help="list the VM leases of a lab")
    leases.add_argument("--lab", required=True, help="lab file or name")
    leases.set_defaults(func=_lazy("patchgate.leases.cli", "cmd_leases"))

    reap = sub.add_parser("reap", help="restore VMs left behind by runs that are no longer alive")
    reap.add_argument("--lab", required=True, help="lab file or name")
    reap.add_argument("--dry-run", action="store_true", help="only say what would be restored")
    reap.set_defaults(func=_lazy("patchgate.reap", "cmd_reap"))

    twin = sub.add_parser("twin", help="list the twin's images and update behaviours")
    twin.add_argument("--twin-catalog", action="append", default=[], metavar="DIR")
    twin.set_defaults(func=_lazy("patchgate.twin.listing", "cmd_list"))
    return parser


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    from patchgate.secrets import install_logging_redaction

    install_logging_redaction()  # before anything can log a secret (hvac, requests, pypsrp debug logs)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_CONFIG
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except PatchgateError as exc:
        from patchgate.secrets.redact import redactor

        return _fail(redactor.redact(str(exc)), EXIT_INCONCLUSIVE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug users
        import os
        import traceback

        from patchgate.secrets.redact import redactor

        if os.environ.get("PATCHGATE_DEBUG"):
            traceback.print_exc()
        return _fail(f"internal error: {exc.__class__.__name__}: {redactor.redact(str(exc))} "
                     "(set PATCHGATE_DEBUG=1 for the traceback)", EXIT_INTERNAL)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """The ``patchgate`` command: ``main``, then exit without the interpreter's last garbage collection walking
    everything the command built (a tenth of a second after a validate that loaded a twin lab)."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
