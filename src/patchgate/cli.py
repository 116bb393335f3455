"""The ``patchgate`` command.

Exit codes (docs/exit-codes.md): 0 approve, 1 block, 2 inconclusive, 3 internal error, 4 usage or configuration
error, 130 interrupted before a verdict could be written.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from patchgate import __version__
from patchgate.errors import EXIT_CONFIG, EXIT_INCONCLUSIVE, EXIT_INTERNAL, ConfigError, PatchgateError
from patchgate.config.inputs import INPUTS_CHECKED_BY_PARENT
from patchgate.run.interrupts import Forwarder, stop_signals_blocked

if TYPE_CHECKING:
    import subprocess

CLASSIFICATIONS = ("hotpatch", "baseline", "lcu", "oob", "wsus-security", "ssu", "dotnet", "other")
"""Candidate classifications (patchgate.config.candidate.Classification), for --help without pydantic."""
ROLES = ("hotpatch-member", "wsus-server", "member", "domain-controller", "hyperv-host")
"""VM roles a lab may use (patchgate.config.lab.Role; kept here so --help needs no pydantic)."""

EPILOG = """exit codes: 0 approve, 1 block, 2 inconclusive, 3 internal error, 4 usage or configuration error

examples:
  patchgate validate --lab twin --candidate KB5070881
  patchgate validate --lab labs/vsphere-sim.example.yaml --candidate candidates/KB5070893.yaml --role wsus-server -- -k sync
  patchgate gate reports/<run>            # print the verdict of a finished run, exit with its code
  patchgate report reports/<run>          # single-file Allure report + one-page summary
  patchgate verify reports/<run>          # re-hash every output against the evidence manifest
  patchgate doctor --lab twin             # check a lab before trusting its verdicts (docs/first-day.md)
"""


COMMANDS_ENTRY_POINTS = "patchgate.commands"
"""Installed lab kinds add their subcommands here: a function taking the subparsers and the lazy loader."""


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
    from patchgate.config.inputs import new_run_id, resolve_candidate, resolve_lab
    from patchgate.evidence.outdir import require_fresh_out_dir
    from patchgate.paths import state_dir

    lab_path = resolve_lab(args.lab)
    candidate_path = resolve_candidate(args.candidate)
    for folder in args.twin_catalog:
        if not Path(folder).is_dir():
            raise ConfigError("--twin-catalog: not a directory", file=folder)
    suites = Path(args.suites)
    if not suites.is_dir():
        raise ConfigError("no suites folder here: run patchgate in the folder that holds suites/ (and its "
                          "conftest.py), or name it with --suites DIR", file=str(suites))
    root = suites.resolve().parent
    state_dir()  # ledgers, leases and twin disks live there: an unusable folder is said now, not mid-run
    args.fresh_seed = secrets.randbelow(2**31)  # used when neither --seed nor the lab file names one
    lab, candidate = _check_inputs(args, lab_path, candidate_path)  # exit 4 before anything starts
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
        return _fail(f"no gate.json was written (pytest exit {int(code)}): verdict inconclusive",
                     EXIT_INCONCLUSIVE)
    gate = json.loads(gate_file.read_text(encoding="utf-8"))
    _print_verdict(gate, gate_file)
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
    check_kind_inputs(lab, KindOptions(catalogs=[Path(f) for f in args.twin_catalog]))  # the kind's own files
    return lab, candidate


# The pytest plugins the suites run with, and no others: a plugin that happens to be installed beside patchgate
# cannot change how the gate runs (add one with `-- -p module`), and pytest does not scan every installed package
# for plugins at start-up (about a sixth of a second of each run).
SUITE_PLUGINS = ("xdist.plugin", "allure_pytest.plugin", "testinfra.plugin", "patchgate_pytest.plugin")
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


def _start_suites(command: list[str], *, cwd: Path) -> "subprocess.Popen[bytes]":
    """The suites in a child pytest; the inputs were checked here, so the child need not check them again."""
    import os
    import subprocess

    env = dict(os.environ)
    env[NO_PLUGIN_AUTOLOAD] = "1"  # SUITE_PLUGINS are named on the command line
    env[INPUTS_CHECKED_BY_PARENT] = "1"
    return subprocess.Popen(command, cwd=cwd, env=env)


def _wait(child: "subprocess.Popen[bytes]") -> int:
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries wait() for us
            continue


def _print_verdict(gate: dict, gate_file: Path) -> None:
    shown = gate["verdict"].upper() + (" (partial)" if gate.get("partial") else "")
    print(f"\nverdict: {shown} for {gate['candidate']['kb']} on lab {gate['lab']['name']}: {gate['reason']}")
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
    for vm in gate.get("vms", []):
        if vm.get("kept"):
            print(f"  KEPT    {vm['name']:<16} {_how_to_reach(gate, vm)}; restore it with: patchgate reap --lab "
                  f"{gate['lab'].get('file') or gate['lab']['name']}")
    for waiver in gate.get("waivers_expired", []):
        scope = ", ".join(waiver.get("vms", []) + waiver.get("roles", []))
        print(f"  EXPIRED waiver for {waiver['invariant']} on {scope} by {waiver['owner']}: expired on "
              f"{waiver['expires']}, no longer applies")
    from patchgate.evidence.signing_status import signing_status

    print(f"signature: {signing_status(gate_file.parent).text}")
    print(f"gate file: {gate_file}")


def _how_to_reach(gate: dict, vm: dict) -> str:
    """Where a VM left as it is (--keep-on-failure) can be looked at."""
    if gate["lab"].get("hypervisor") == "twin":
        return "left changed (not restored), its twin disk is kept in the state folder (PATCHGATE_STATE_DIR)"
    endpoint = vm.get("endpoint") or {}
    where = endpoint.get("hostname") or endpoint.get("address")
    port = f":{endpoint['port']}" if endpoint.get("port") else ""
    return f"left changed (not restored), reach it at {where}{port}" if where else \
        "left changed (not restored), find it in the hypervisor by its name"


# ------------------------------------------------------------------ gate

def cmd_gate(args: argparse.Namespace) -> int:
    from patchgate.evidence.gate import read_gate

    gate_file = Path(args.dir) / "gate.json"
    if not gate_file.is_file():
        raise ConfigError("no gate.json in this folder (is it a patchgate output folder?)", file=str(args.dir))
    try:
        gate = read_gate(gate_file)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"not a valid gate file: {exc}", file=str(gate_file)) from None
    from patchgate.model.verdicts import run_problems

    problems = run_problems(Path(args.dir), gate)
    if problems:
        raise ConfigError("the run's outputs contradict each other, no verdict can be trusted: "
                          + "; ".join(problems) + " (patchgate verify checks the whole folder)", file=str(args.dir))
    if args.json:
        print(json.dumps({k: gate.get(k) for k in ("verdict", "reason", "candidate", "lab", "run_id", "partial",
                                                   "selection")}, indent=2))
    else:
        _print_verdict(gate, gate_file)
    if args.require_full and gate.get("partial") and gate["verdict"] == "approve":
        narrowed = (gate.get("selection") or {}).get("narrowed_by", "")
        print(f"patchgate: --require-full: the run checked only part of the lab ({narrowed}): inconclusive "
              "for a release", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    return int(gate["exit_code"])


# ------------------------------------------------------------------ optional commands provided by other modules

def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args))

    return run


def _add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """--lab and --twin-catalog, for the commands that boot a lab's VMs without a candidate run."""
    parser.add_argument("--lab", required=True, help="lab file, or a name under labs/ (e.g. twin)")
    parser.add_argument("--twin-catalog", action="append", default=[], metavar="DIR",
                        help="add twin images and behaviours from DIR (repeatable)")


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
    validate.add_argument("--out", help="output folder, new or empty: a folder holding files (e.g. an "
                          "earlier run) is refused with exit 4 (default: a new folder under reports/)")
    validate.add_argument("--suites", default="suites", metavar="DIR",
                          help="the suites to run, the policy the gate enforces (default: suites/ here; its "
                          "parent folder is pytest's rootdir, with the suites' conftest.py)")
    validate.add_argument("--twin-catalog", action="append", default=[], metavar="DIR",
                          help="add twin images and behaviours from DIR (repeatable)")
    validate.add_argument("--vm", action="append", default=[], metavar="NAME",
                          help="only this VM of the lab (repeatable)")
    validate.add_argument("--role", action="append", default=[], metavar="ROLE",
                          help="only VMs with this role (repeatable): " + ", ".join(ROLES))
    validate.add_argument("--ring", action="append", default=[], metavar="RING",
                          help="only VMs in this ring, as the lab file names them, e.g. ring0 (repeatable)")
    validate.add_argument("--seed", type=int, default=None, metavar="N",
                          help="seed of the twin's real-world noise (hypervisor.settings.noise: realistic); default: "
                               "the lab file's seed, else a fresh one, recorded in run-manifest.json")
    validate.add_argument("--control", action="store_true",
                          help="also take each VM through the same lifecycle without the candidate (lab `control: "
                               "reboot`; a lab with `control: {vm: paired}` runs it on each VM's control_pair); "
                               "checks that fail there too are reported as noise seen on the control")
    validate.add_argument("--keep-on-failure", action="store_true",
                          help="leave VMs whose checks failed as they are, for debugging (says so in the output)")
    validate.add_argument("pytest_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    validate.set_defaults(func=cmd_validate)

    gate = sub.add_parser("gate", help="print the verdict of a finished run and exit with its code (0/1/2)",
                          description="Print the verdict of a finished run and exit with its code. The verdict "
                          "is recomputed from the checks in gate.json and compared with run-manifest.json and "
                          "junit.xml: outputs that contradict each other are refused (exit 4).",
                          epilog="exit codes: 0 approve, 1 block, 2 inconclusive (or a partial approve with "
                          "--require-full), 4 not a run folder or contradicting outputs")
    gate.add_argument("dir", help="a run's output folder")
    gate.add_argument("--json", action="store_true", help="print the verdict as JSON")
    gate.add_argument("--require-full", action="store_true",
                      help="exit 2 (inconclusive) when an approving run was narrowed (--vm/--role/--ring, -k, -m "
                      "or paths): for release gates, which must judge the whole lab")
    gate.set_defaults(func=cmd_gate)

    report = sub.add_parser("report", help="build the single-file Allure report and a one-page summary",
                            description="Build DIR/report/index.html (Allure 3, one self-contained file), "
                            "DIR/summary.html and DIR/summary.md from a finished run's evidence, and "
                            "report-manifest.json over them; the evidence itself is never changed.",
                            epilog="exit codes: 0 built, 3 Allure failed, 4 not a run folder or Allure not "
                            "installed (npm install)")
    report.add_argument("dir", help="a run's output folder")
    report.set_defaults(func=_lazy("patchgate.evidence.report", "cmd_report"))

    verify = sub.add_parser("verify", help="re-hash a run's outputs against its evidence manifest (and signature)",
                            description="Re-hash every output of a run against evidence-manifest.json, check that "
                            "gate.json, run-manifest.json and junit.xml give the same verdict and that it follows "
                            "from the checks, and check the signatures; a run whose lab signs verdicts fails "
                            "without them.", epilog="exit codes: 0 all good, 1 something differs (each problem "
                            "is named), 4 not a run folder")
    verify.add_argument("dir", help="a run's output folder")
    verify.add_argument("--public-key", help="verify the signature offline with this exported public key")
    verify.add_argument("--lab", help="lab file whose Vault verifies the signature online (default: the lab file "
                        "the run recorded in run-manifest.json)")
    verify.add_argument("--print-digest", action="store_true",
                        help="only print the sha256 of evidence-manifest.json, to store outside the folder (CI log, "
                        "release ticket); exit 0")
    verify.add_argument("--digest", metavar="SHA256",
                        help="also require evidence-manifest.json to have this sha256 (from --print-digest)")
    verify.set_defaults(func=_lazy("patchgate.evidence.manifests", "cmd_verify"))

    candidate = sub.add_parser("candidate", help="write a candidate file to complete (candidate new PACKAGE...)",
                               description="Candidate files (docs/candidate.md).",
                               epilog="exit codes: 0 written, 4 bad input (no package, KB not in the file "
                               "name, file exists)")
    candidate_sub = candidate.add_subparsers(dest="candidate_command", metavar="new", parser_class=Parser,
                                             required=True)
    new = candidate_sub.add_parser("new", help="write a candidate file from the update's package files",
                                   description="Write candidates/<KB>.yaml: the KB from the package file name, "
                                   "each package's sha256, the classification (given or asked), and what each "
                                   ".msu's own properties file says (applicability, installation type, KB article "
                                   "number, support link) in its notes, or why it could not be read; title, target "
                                   "build, release date (and the KB article without a support link) as "
                                   "placeholders that loading the file refuses until they are filled in.",
                                   epilog="exit codes: 0 written, 4 bad input (no package, KB not in the file "
                                   "name, a package whose properties name another KB, the candidate file exists, "
                                   "no --classification without a terminal)")
    new.add_argument("packages", nargs="+", metavar="PACKAGE", help="the update's .msu (or .cab) files, in "
                     "install order")
    new.add_argument("--classification", choices=CLASSIFICATIONS,
                     help="the update's kind (asked on a terminal when not given)")
    new.add_argument("--kb", help="the KB id, when the package file name does not carry it")
    new.add_argument("--out", help="the candidate file to write (default: candidates/<KB>.yaml)")
    new.set_defaults(func=_lazy("patchgate.config.scaffold", "cmd_candidate_new"))

    leases = sub.add_parser("leases", help="list the VM leases of a lab",
                            description="List who holds which VM of the lab (run, process, host, since), and "
                            "stale leases whose holder died.", epilog="exit codes: 0 listed, 2 lease backend "
                            "unreachable, 4 bad lab file")
    leases.add_argument("--lab", required=True, help="lab file or name")
    leases.set_defaults(func=_lazy("patchgate.leases.cli", "cmd_leases"))

    reap = sub.add_parser("reap", help="restore VMs left behind by runs that are no longer alive",
                          description="Restore VMs that runs no longer alive left changed (killed runs, "
                          "--keep-on-failure) to their snapshot and release their stale leases.",
                          epilog="exit codes: 0 nothing left behind or all restored, 2 a VM could not be "
                          "restored, 4 bad lab file")
    reap.add_argument("--lab", required=True, help="lab file or name")
    reap.add_argument("--dry-run", action="store_true", help="only say what would be restored")
    reap.set_defaults(func=_lazy("patchgate.run.reap", "cmd_reap"))

    doctor = sub.add_parser("doctor", help="check a lab before trusting its verdicts: hypervisor, remoting, VMs",
                            description="Read each VM as it is (its snapshot and power state from the "
                            "hypervisor; a running VM is probed, nothing is reverted, started or installed) and "
                            "print one line per check with ok / warn / fail and what to do (docs/doctor.md). A "
                            "powered-off VM gets a warning per guest check unless --boot.",
                            epilog="exit codes: 0 nothing failed (warnings allowed), 2 a check failed (lab trouble), "
                            "4 bad input")
    _add_lab_arguments(doctor)
    doctor.add_argument("--vm", action="append", default=[], metavar="NAME", help="only this VM (repeatable)")
    doctor.add_argument("--candidate", help="candidate file or KB id: check free space for its packages (x3)")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON (for CI)")
    doctor.add_argument("--boot", action="store_true",
                        help="boot each VM from its snapshot as a run does and restore it afterwards")
    doctor.add_argument("--noise", action="store_true",
                        help="also measure the lab's own noise (implies --boot): capture, restart without an "
                        "install, capture, and show which invariants would fail on that diff; restores the VM")
    doctor.set_defaults(func=_lazy("patchgate.doctor.command", "cmd_doctor"))

    capture = sub.add_parser("capture", help="save one VM's probe output as a transcript (docs/probes.md)",
                             description="Run one posture capture and the preflight script on the running VM "
                             "(--boot: boot it from its snapshot first and restore it afterwards; nothing is "
                             "installed), and write each probe's raw "
                             "output with the patchgate version and the VM's build to DIR. Secrets are always "
                             "redacted; host names are replaced unless --keep-names.",
                             epilog="exit codes: 0 written, 2 lab trouble (nothing usable was captured), 4 bad input")
    _add_lab_arguments(capture)
    capture.add_argument("--vm", required=True, metavar="NAME", help="the VM to capture")
    capture.add_argument("--out", required=True, metavar="DIR", help="the transcript folder to write")
    capture.add_argument("--keep-names", action="store_true", help="keep the VM's host names in the files")
    capture.add_argument("--boot", action="store_true",
                         help="boot the VM from its snapshot as a run does and restore it afterwards")
    capture.set_defaults(func=_lazy("patchgate.doctor.command", "cmd_capture"))

    calendar = sub.add_parser("calendar", help="show the hotpatch calendar (months, KBs, builds, kinds, sources)",
                              description="Show the Windows Server 2025 hotpatch calendar the track check uses: the "
                              "built-in one, a lab's ('calendar:' in the lab file) or a file. 'calendar import "
                              "PAGE' turns a saved copy of Microsoft's release information page (HTML or markdown) "
                              "into the calendar format (docs/calendar.md).",
                              epilog="exit codes: 0 shown or imported, 4 a calendar file or page that cannot be read")
    calendar.add_argument("--lab", help="show the calendar this lab file (or name) uses")
    calendar.add_argument("--file", help="show this calendar file")
    calendar_sub = calendar.add_subparsers(dest="calendar_command", metavar="import", parser_class=Parser)
    calendar_import = calendar_sub.add_parser("import", help="saved release information page -> calendar file")
    calendar_import.add_argument("page", help="the saved page (.html or .md)")
    calendar_import.add_argument("--out", help="write the calendar file here (default: standard output)")
    calendar.set_defaults(func=_lazy("patchgate.calendar.command", "cmd_calendar"))

    from importlib import metadata

    for entry in metadata.entry_points(group=COMMANDS_ENTRY_POINTS):  # subcommands of installed lab kinds
        entry.load()(sub, _lazy)
    return parser


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from patchgate.secrets import install_logging_redaction

        install_logging_redaction()  # before anything can log a secret (hvac, requests, pypsrp debug logs)
        parser = build_parser()
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
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
        import traceback

        from patchgate.secrets.redact import redactor

        if _debug():
            traceback.print_exc()
        return _fail(f"internal error: {exc.__class__.__name__}: {redactor.redact(str(exc))} "
                     "(set PATCHGATE_DEBUG=1 for the traceback)", EXIT_INTERNAL)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _debug() -> bool:
    """PATCHGATE_DEBUG asks for tracebacks of internal errors (a value that is no boolean asks too)."""
    from patchgate.environment import environment

    try:
        return environment().debug
    except ConfigError:
        return True


def run() -> None:
    """The ``patchgate`` command: ``main``, its exit code as the process's."""
    sys.exit(main())


if __name__ == "__main__":
    run()
