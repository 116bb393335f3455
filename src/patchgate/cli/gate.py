"""``patchgate gate RUN``: the verdict of a finished run, recomputed and cross-checked, as an exit code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from patchgate.cli.verdict import print_verdict
from patchgate.errors import EXIT_INCONCLUSIVE, ConfigError
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    gate = sub.add_parser("gate", help=summary("gate"),
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
        print_verdict(gate, gate_file)
    if args.require_full and gate.get("partial") and gate["verdict"] == "approve":
        narrowed = (gate.get("selection") or {}).get("narrowed_by", "")
        print(f"patchgate: --require-full: the run checked only part of the lab ({narrowed}): inconclusive "
              "for a release", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    return int(gate["exit_code"])
