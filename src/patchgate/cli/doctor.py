"""``patchgate doctor`` and ``patchgate capture``: check a lab as it is; save one VM's probe output."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from patchgate.cli.common import add_lab_arguments
from patchgate.config.candidate import Candidate
from patchgate.config.lab import Lab
from patchgate.doctor.command import EXIT_OK, DoctorLifecycle, _run, diagnose, exit_code, print_report
from patchgate.doctor.noise import noise_checks, noise_outcomes, print_noise
from patchgate.errors import EXIT_INCONCLUSIVE
from patchgate.run.labrun import RunSelection
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help=summary("doctor"),
                            description="Read each VM as it is (its snapshot and power state from the "
                            "hypervisor; a running VM is probed, nothing is reverted, started or installed) and "
                            "print one line per check with ok / warn / fail and what to do (docs/doctor.md). A "
                            "powered-off VM gets a warning per guest check unless --boot.",
                            epilog="exit codes: 0 nothing failed (warnings allowed), 2 a check failed (lab trouble), "
                            "4 bad input")
    add_lab_arguments(doctor)
    doctor.add_argument("--vm", action="append", default=[], metavar="NAME", help="only this VM (repeatable)")
    doctor.add_argument("--candidate", help="candidate file or KB id: check free space for its packages (x3)")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON (for CI)")
    doctor.add_argument("--boot", action="store_true",
                        help="boot each VM from its snapshot as a run does and restore it afterwards")
    doctor.add_argument("--noise", action="store_true",
                        help="also measure the lab's own noise (implies --boot): capture, restart without an "
                        "install, capture, and show which invariants would fail on that diff; restores the VM")
    doctor.set_defaults(func=cmd_doctor)


    capture = sub.add_parser("capture", help=summary("capture"),
                             description="Run one posture capture and the preflight script on the running VM "
                             "(--boot: boot it from its snapshot first and restore it afterwards; nothing is "
                             "installed), and write each probe's raw "
                             "output with the patchgate version and the VM's build to DIR. Secrets are always "
                             "redacted; host names are replaced unless --keep-names.",
                             epilog="exit codes: 0 written, 2 lab trouble (nothing usable was captured), 4 bad input")
    add_lab_arguments(capture)
    capture.add_argument("--vm", required=True, metavar="NAME", help="the VM to capture")
    capture.add_argument("--out", required=True, metavar="DIR", help="the transcript folder to write")
    capture.add_argument("--keep-names", action="store_true", help="keep the VM's host names in the files")
    capture.add_argument("--boot", action="store_true",
                         help="boot the VM from its snapshot as a run does and restore it afterwards")
    capture.set_defaults(func=cmd_capture)


def _load(args: argparse.Namespace) -> tuple[Lab, Candidate | None, list[Path]]:
    """The lab (and candidate) the command names, checked as validate checks them: bad input is exit 4."""
    from patchgate.config import load_candidate, load_lab
    from patchgate.config.inputs import resolve_candidate, resolve_lab

    lab = load_lab(resolve_lab(args.lab))
    catalogs = [Path(folder) for folder in args.kind_catalogs]
    RunSelection(vms=args.vm).apply(lab)
    candidate = load_candidate(resolve_candidate(args.candidate)) if getattr(args, "candidate", None) else None
    from patchgate.labkinds import KindOptions, check_kind_inputs

    check_kind_inputs(lab, KindOptions(catalogs=catalogs))  # the lab kind's own files: exit 4
    return lab, candidate, catalogs


def cmd_doctor(args: argparse.Namespace) -> int:
    lab, candidate, catalogs = _load(args)
    run = _run(lab, candidate, catalogs, args.vm, boot=args.boot, noise=args.noise)
    results = diagnose(run)
    noise = {name: noise_outcomes(lifecycle) for name, lifecycle in run.lifecycles.items()} if args.noise else {}
    for name, outcomes in noise.items():
        results[name] += noise_checks(outcomes)
    code = exit_code(results)
    if args.json:
        document = {"lab": lab.name, "checked_at": dt.datetime.now(dt.UTC).isoformat(), "exit_code": code,
                    "vms": {vm: [c.to_dict() for c in checks] for vm, checks in results.items()}}
        if args.noise:
            document["noise"] = noise
        print(json.dumps(document, indent=2))
    else:
        print_report(lab.name, results)
        if args.noise:
            print_noise(noise)
    return code


def cmd_capture(args: argparse.Namespace) -> int:
    """One posture capture of one VM, saved as a transcript (redacted) in ``args.out``."""
    from patchgate.doctor.transcript import write_transcript
    from patchgate.probes.batch import parse_capture
    from patchgate.remoting.base import ScriptResult

    args.vm = [args.vm]
    lab, _candidate, catalogs = _load(args)
    run = _run(lab, None, catalogs, args.vm, boot=args.boot)
    results = diagnose(run)
    lifecycle = run.lifecycles[args.vm[0]]
    obs = lifecycle.obs
    if obs.baseline_raw is None or not isinstance(lifecycle, DoctorLifecycle) or lifecycle.facts_raw is None:
        print_report(lab.name, results)
        print("patchgate capture: no transcript written (the VM could not be captured)")
        return EXIT_INCONCLUSIVE
    raw = parse_capture(ScriptResult("capture", [obs.baseline_raw]), vm=obs.vm.name).raw
    names = [obs.vm.name, lifecycle.facts.computer_name if lifecycle.facts else None,
             obs.endpoint.hostname if obs.endpoint else None]
    out = write_transcript(Path(args.out), raw=raw, preflight=lifecycle.facts_raw, role=obs.vm.role,
                           source=lab.hypervisor.kind,
                           names=[n for n in names if n], keep_names=args.keep_names)
    print(f"patchgate capture: {obs.vm.name}: {len(raw)} probe(s) and the preflight written to {out}"
          f"{'' if args.keep_names else ' (host names replaced)'}")
    return EXIT_OK
