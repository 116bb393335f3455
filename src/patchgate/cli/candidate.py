"""``patchgate candidate new PACKAGE...``: write a candidate file to complete from the update's packages."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from patchgate.cli.common import CLASSIFICATIONS, Parser
from patchgate.config.msu_properties import read_msu_properties
from patchgate.config.scaffold import _classification, check_kb, kb_of, package_notes, render_candidate
from patchgate.errors import ConfigError
from patchgate.evidence.hashing import sha256_file
from patchgate.model.kb import kb_id
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    candidate = sub.add_parser("candidate", help=summary("candidate"),
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
    new.set_defaults(func=cmd_candidate_new)


def cmd_candidate_new(args: argparse.Namespace) -> int:
    packages = [Path(p) for p in args.packages]
    for package in packages:
        if not package.is_file():
            raise ConfigError("package file not found", file=str(package))
    try:
        kb = kb_id(args.kb or kb_of(packages[0]), bare_number=True)
    except ValueError as exc:
        raise ConfigError(f"--kb: {exc}") from None
    out = Path(args.out) if args.out else Path("candidates") / f"{kb}.yaml"
    if out.exists():
        raise ConfigError("the candidate file exists already: remove it or pass --out", file=str(out))
    classification = _classification(args.classification)
    entries = [(Path(os.path.relpath(p.resolve(), out.resolve().parent)).as_posix(), sha256_file(p))
               for p in packages]
    read = [read_msu_properties(p) for p in packages]
    check_kb(kb, [(str(p), props) for p, props in zip(packages, read)])
    notes, link = package_notes([(file, props) for (file, _digest), props in zip(entries, read)])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_candidate(kb, classification, entries, notes=notes, kb_article=link), encoding="utf-8")
    print(f"wrote {out}: {kb}, {len(entries)} package(s) with their sha256, classification {classification}")
    for line in notes.splitlines():
        print(f"  {line}")
    todo = "title, target_build, release_date" + ("" if link else " and references.kb_article")
    print(f"fill in {todo} from the KB article; 'patchgate validate --candidate {out}' refuses the file until then")
    return 0
