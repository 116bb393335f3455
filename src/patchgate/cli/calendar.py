"""``patchgate calendar``: show the hotpatch calendar a lab uses, or import Microsoft's page into a calendar file."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from pathlib import Path

from patchgate.calendar.schedule import HotpatchCalendar, default_calendar
from patchgate.cli.common import Parser
from patchgate.cli.table import summary


def _calendar(args: argparse.Namespace) -> HotpatchCalendar:
    if getattr(args, "file", None):
        return HotpatchCalendar.load(Path(args.file))
    if getattr(args, "lab", None):
        from patchgate.config import load_lab
        from patchgate.config.inputs import resolve_lab

        lab = load_lab(resolve_lab(args.lab))
        if lab.calendar_path is not None:
            return HotpatchCalendar.load(lab.calendar_path)
    return default_calendar()


def rows(cal: HotpatchCalendar) -> list[tuple[str, str, str, str, str, str]]:
    """(month, kind, KB, build, confidence, source) for every release and pending month, in month order."""
    out: list[tuple[str, str, str, str, str, str]] = []
    for q in cal.quarters:
        for r in q.releases:
            month = r.month or (r.released.strftime("%Y-%m") if r.released else "")
            kind = cal.classify(r.kb)
            out.append((month, kind, r.kb, r.build, r.confidence, r.source or (cal.data.sources or [""])[0]))
    for p in cal.data.pending:
        build = f"(LCU {p.lcu_build})" if p.lcu_build else ""
        out.append((p.month, f"{p.kind} [U]", "not verified", build, "unverified", p.source or p.note))
    for u in cal.data.non_os:
        out.append(("", u.kind, u.kb, "", "3p" if "[3P]" in u.note else "microsoft", u.source))
    return sorted(out, key=lambda r: (r[0] or "9999", r[2]))


def cmd_calendar(args: argparse.Namespace) -> int:
    if getattr(args, "calendar_command", None) == "import":
        return cmd_import(args)
    cal = _calendar(args)
    print(f"{cal.data.product} hotpatch calendar: {cal.source}")
    print(f"last month: {cal.last_month}" + (f"; sources read {cal.data.taken_on}" if cal.data.taken_on else ""))
    table = [("month", "kind", "KB", "build", "confidence", "source"), *rows(cal)]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from patchgate.calendar.page import import_page

    text = import_page(Path(args.page))
    if args.out:
        out = Path(args.out)
        out.write_text(text, encoding="utf-8")
        HotpatchCalendar.load(out)  # what we wrote must load (errors name the file and line)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_command(sub: Any) -> None:
    calendar = sub.add_parser("calendar", help=summary("calendar"),
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
    calendar.set_defaults(func=cmd_calendar)
