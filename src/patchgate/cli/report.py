"""``patchgate report RUN``: the single-file Allure report and the one-page summaries of a finished run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from patchgate.errors import EXIT_CONFIG, ConfigError
from patchgate.evidence.report import generate
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    report = sub.add_parser("report", help=summary("report"),
                            description="Build DIR/report/index.html (Allure 3, one self-contained file), "
                            "DIR/summary.html and DIR/summary.md from a finished run's evidence, and "
                            "report-manifest.json over them; the evidence itself is never changed.",
                            epilog="exit codes: 0 built, 3 Allure failed, 4 not a run folder or Allure not "
                            "installed (npm install)")
    report.add_argument("dir", help="a run's output folder")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir)
    try:
        written = generate(run_dir)
    except ConfigError as exc:
        print(f"patchgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RuntimeError as exc:
        print(f"patchgate: {exc}", file=sys.stderr)
        return 3
    gate = json.loads((run_dir / "gate.json").read_text(encoding="utf-8"))
    print(f"verdict: {gate['verdict'].upper()} for {gate['candidate']['kb']} on lab {gate['lab']['name']}")
    print(f"report:  {written['report']}")
    print(f"summary: {written['summary_html']} (and {written['summary_md'].name})")
    return 0
