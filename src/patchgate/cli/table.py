"""The table of subcommands: each name with the module that builds and runs it and its one-line help.

A command loads only its own module (as pip's command table does): ``patchgate verify`` starts without
importing the engine modules that ``validate`` or ``doctor`` need, and ``patchgate --help`` lists every
command from this table alone.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    module: str
    """patchgate.cli.<module>, whose add_command(sub) adds this command's parser."""
    summary: str
    """The line ``patchgate --help`` shows for it."""


COMMANDS: dict[str, Command] = {
    "validate": Command("validate", "run the suites for a candidate on a lab and write the verdict"),
    "gate": Command("gate", "print the verdict of a finished run and exit with its code (0/1/2)"),
    "report": Command("report", "build the single-file Allure report and a one-page summary"),
    "verify": Command("verify", "re-hash a run's outputs against its evidence manifest (and signature)"),
    "promote": Command("promote", "approve an approved run's KB for a ring on production WSUS"),
    "candidate": Command("candidate", "write a candidate file to complete (candidate new PACKAGE...)"),
    "leases": Command("leases", "list the VM leases of a lab"),
    "reap": Command("reap", "restore VMs left behind by runs that are no longer alive"),
    "doctor": Command("doctor", "check a lab before trusting its verdicts: hypervisor, remoting, VMs"),
    "capture": Command("doctor", "save one VM's probe output as a transcript (docs/probes.md)"),
    "calendar": Command("calendar", "show the hotpatch calendar (months, KBs, builds, kinds, sources)"),
}


def summary(name: str) -> str:
    return COMMANDS[name].summary
