"""``patchgate candidate new PACKAGE...``: a candidate file to complete, from the update's package files.

What the files tell is filled in: the KB (from the package file name, as the Microsoft Update Catalog names it:
``windows11.0-kb5070893-x64.msu``), each package's sha256 and the classification (given, or asked on a terminal).
What only Microsoft's documentation tells (title, target build, release date, KB article) is written as a
placeholder that loading the file refuses (exit 4, naming the field) until someone fills it in from the KB
article. Reading title and applicability out of the .msu itself (a CAB archive) is not done **[U]**: it needs a
CAB reader patchgate does not ship.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import typing
from pathlib import Path

from patchgate.config.candidate import Classification
from patchgate.errors import ConfigError
from patchgate.evidence.hashing import sha256_file

CLASSIFICATIONS = typing.get_args(Classification)
KB_IN_NAME = re.compile(r"kb(\d{6,8})", re.IGNORECASE)
PLACEHOLDER = "TODO"


def kb_of(package: Path) -> str:
    found = KB_IN_NAME.search(package.name)
    if not found:
        raise ConfigError("cannot tell the KB from the package file name (expected e.g. "
                          "windows11.0-kb5070893-x64.msu): pass --kb KBnnnnnnn", file=str(package))
    return f"KB{found.group(1)}"


def _classification(given: str | None) -> str:
    if given:
        return given
    if not sys.stdin.isatty():
        raise ConfigError(f"--classification is needed (one of {', '.join(CLASSIFICATIONS)})")
    while True:
        answer = input(f"classification ({' | '.join(CLASSIFICATIONS)}): ").strip()
        if answer in CLASSIFICATIONS:
            return answer


def render_candidate(kb: str, classification: str, packages: list[tuple[str, str]]) -> str:
    """The candidate file's text: known values filled in, the rest as placeholders the loader refuses."""
    lines = [f"kb: {kb}",
             f'title: "{PLACEHOLDER}: the title of {kb} as its KB article gives it"',
             f"classification: {classification}            # {' | '.join(CLASSIFICATIONS)}",
             f'target_build: "{PLACEHOLDER}"     # CurrentBuild.UBR after the install, e.g. "26100.6905" (quoted)',
             f"release_date: {PLACEHOLDER}       # ISO date from the KB article, e.g. 2025-10-24",
             "packages:                        # in install order; paths are relative to this file"]
    for file, digest in packages:
        lines += [f"  - file: {json.dumps(file)}", f'    sha256: "{digest}"']
    lines += ["references:",
              f'  kb_article: "{PLACEHOLDER}: https://support.microsoft.com/... (the KB article of {kb})"',
              "  cves: []                       # CVE-YYYY-NNNN the update fixes",
              "notes: \"\""]
    return "\n".join(lines) + "\n"


def cmd_candidate_new(args: argparse.Namespace) -> int:
    packages = [Path(p) for p in args.packages]
    for package in packages:
        if not package.is_file():
            raise ConfigError("package file not found", file=str(package))
    kb = (args.kb or kb_of(packages[0])).upper()
    if not kb.startswith("KB"):
        kb = f"KB{kb}"
    out = Path(args.out) if args.out else Path("candidates") / f"{kb}.yaml"
    if out.exists():
        raise ConfigError("the candidate file exists already: remove it or pass --out", file=str(out))
    classification = _classification(args.classification)
    entries = [(Path(os.path.relpath(p.resolve(), out.resolve().parent)).as_posix(), sha256_file(p))
               for p in packages]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_candidate(kb, classification, entries), encoding="utf-8")
    print(f"wrote {out}: {kb}, {len(entries)} package(s) with their sha256, classification {classification}")
    print(f"fill in title, target_build, release_date and references.kb_article from the KB article; "
          f"'patchgate validate --candidate {out}' refuses the file until then")
    return 0
