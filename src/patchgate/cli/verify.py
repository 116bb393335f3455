"""``patchgate verify RUN``: re-hash a run's outputs, cross-check its verdicts, check its signatures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from patchgate.errors import EXIT_CONFIG, ConfigError
from patchgate.evidence.manifests import EVIDENCE_MANIFEST, EXIT_MISMATCH, EXIT_OK, manifest_digest, verify_dir
from patchgate.cli.table import summary


def add_command(sub: Any) -> None:
    verify = sub.add_parser("verify", help=summary("verify"),
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
    verify.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    out_dir = Path(args.dir)
    try:
        if getattr(args, "print_digest", False):
            print(f"sha256:{manifest_digest(out_dir)}  {out_dir / EVIDENCE_MANIFEST}")
            return EXIT_OK
        expected = getattr(args, "digest", None)
        if expected and expected.lower().removeprefix("sha256:") != manifest_digest(out_dir):
            print(f"CHANGED  {EVIDENCE_MANIFEST} (its sha256 is not the --digest given)")
            print(f"FAILED: the evidence manifest is not the one recorded in {out_dir}", file=sys.stderr)
            return EXIT_MISMATCH
        result = verify_dir(out_dir, public_key=getattr(args, "public_key", None), lab=getattr(args, "lab", None))
    except ConfigError as exc:
        print(f"patchgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for line in result.lines():
        print(line)
    for note in result.notes:
        print(note)
    if result.ok:
        print(f"OK: {result.evidence_checked} file(s) match {out_dir / EVIDENCE_MANIFEST}")
        return EXIT_OK
    print(f"FAILED: {len(result.changed)} changed, {len(result.missing)} missing, {len(result.extra)} extra, "
          f"{len(result.problems)} other problem(s) in {out_dir}", file=sys.stderr)
    return EXIT_MISMATCH
