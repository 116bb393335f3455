"""``patchgate candidate new PACKAGE...``: a candidate file to complete, from the update's package files.

What the files tell is filled in: the KB (from the package file name, as the Microsoft Update Catalog names it:
``windows11.0-kb5070893-x64.msu``), each package's sha256 and the classification (given, or asked on a terminal).
What the package's own properties file says (``patchgate.config.msu_properties``: applicability, installation type, build
date, KB article number and support link) is copied into the file's notes, the support link becomes the KB
article reference, and a KB article number that contradicts the file name is bad input; a package whose properties
cannot be read is named in the notes with the reason. What only Microsoft's documentation tells (title, target
build, release date) is written as a placeholder that loading the file refuses (exit 4, naming the field) until
someone fills it in from the KB article: no properties field is documented to carry the title **[U]**.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from pathlib import Path

from patchgate.config.candidate import Classification
from patchgate.errors import ConfigError
from patchgate.config.msu_properties import MsuProperties

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


# the properties worth keeping in the candidate's notes, as the package names them
NOTED_PROPERTIES = ("ApplicabilityInfo", "Applies to", "Installation Type", "Build Date", "Processor Architecture",
                    "KB Article Number", "Support Link")


def package_notes(read: list[tuple[str, MsuProperties]]) -> tuple[str, str | None]:
    """The notes text (what each package says about itself, or why it was not read) and its support link."""
    lines, link = [], None
    for file, props in read:
        if props.unread:
            lines.append(f"{file}: properties not read: {props.unread}")
            continue
        said = [f"{key}: {props.get(key)}" for key in NOTED_PROPERTIES if props.get(key)]
        lines.append(f"{file} ({props.member}): " + ("; ".join(said) or "no known property"))
        link = link or props.get("Support Link")
    return "\n".join(lines), link


def check_kb(kb: str, read: list[tuple[str, MsuProperties]]) -> None:
    """The package of the candidate's KB (the only one, or the one its file name names) saying another KB Article
    Number is the wrong package."""
    for file, props in read:
        number = (props.get("KB Article Number") or "").upper().removeprefix("KB")
        named = KB_IN_NAME.search(Path(file).name)
        ours = len(read) == 1 or (named is not None and f"KB{named.group(1)}" == kb)
        if number and ours and f"KB{number}" != kb:
            raise ConfigError(f"the package's properties say KB Article Number {number}, not {kb}: the wrong "
                              "package, or pass --kb", file=file)


def render_candidate(kb: str, classification: str, packages: list[tuple[str, str]], *, notes: str = "",
                     kb_article: str | None = None) -> str:
    """The candidate file's text: known values filled in, the rest as placeholders the loader refuses."""
    article = (json.dumps(kb_article) + "   # the package's Support Link: check it is the KB article" if kb_article
               else f'"{PLACEHOLDER}: https://support.microsoft.com/... (the KB article of {kb})"')
    lines = [f"kb: {kb}",
             f'title: "{PLACEHOLDER}: the title of {kb} as its KB article gives it"',
             f"classification: {classification}            # {' | '.join(CLASSIFICATIONS)}",
             f'target_build: "{PLACEHOLDER}"     # CurrentBuild.UBR after the install, e.g. "26100.6905" (quoted)',
             f"release_date: {PLACEHOLDER}       # ISO date from the KB article, e.g. 2025-10-24",
             "packages:                        # in install order; paths are relative to this file"]
    for file, digest in packages:
        lines += [f"  - file: {json.dumps(file)}", f'    sha256: "{digest}"']
    lines += ["references:",
              f"  kb_article: {article}",
              "  cves: []                       # CVE-YYYY-NNNN the update fixes",
              "# notes: what each package's own properties file says (patchgate candidate new)",
              f"notes: {json.dumps(notes)}"]
    return "\n".join(lines) + "\n"
