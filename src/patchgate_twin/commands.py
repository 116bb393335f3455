"""The twin's subcommand of ``patchgate`` (registered under the ``patchgate.commands`` entry points)."""

from __future__ import annotations

import argparse
from typing import Any, Callable


def add_commands(sub: Any, lazy: Callable[[str, str], Any]) -> None:
    twin = sub.add_parser("twin", help="list the twin's images and update behaviours",
                          description="List the twin's starting images and the updates (KBs) it knows how to "
                          "install, with what each does.", epilog="exit codes: 0 listed, 4 bad catalogue folder")
    twin.add_argument("--twin-catalog", action="append", default=[], metavar="DIR", dest="kind_catalogs")
    twin.set_defaults(func=lazy("patchgate_twin.listing", "cmd_list"))

    serve = sub.add_parser(
        "twin-wsus", help="serve a twin production WSUS on 127.0.0.1, for trying `patchgate promote`",
        description="Serve one twin host with the WSUS role over WSMan on 127.0.0.1 until Ctrl-C: a production\n"
        "WSUS whose computer target groups exist, which holds the candidates' packages (SHA-1 and SHA-256)\n"
        "and keeps its approvals while it runs (docs/rings.md, \"On the twin\"). It accepts one account,\n"
        "from PATCHGATE_PROD_USERNAME and PATCHGATE_PROD_PASSWORD.",
        epilog="exit codes: 0 ended by Ctrl-C, 4 bad input (no account, unknown candidate)\n\nexample:\n"
        "  patchgate twin-wsus --rings-out /tmp/rings.yaml &\n"
        "  patchgate promote reports/<run> --ring ring1 --rings /tmp/rings.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--rings-out", metavar="FILE", help="write labs/rings-twin.example.yaml with this server's "
                       "port to FILE")
    serve.add_argument("--name", default="wsus-prod-01", help="the server's name (default wsus-prod-01)")
    serve.add_argument("--image", default="ws2025-std-wsus-oct2025", help="its twin image (default: the later "
                       "metadata, where KB5070893 is held)")
    serve.add_argument("--group", action="append", default=None, metavar="GROUP",
                       help="a computer target group (repeatable; default ring1-servers, ring2-servers, ring2-sql)")
    serve.add_argument("--candidate", action="append", default=None, metavar="KB",
                       help="a candidate whose packages the server holds (repeatable; default KB5070893, KB5070881)")
    serve.add_argument("--no-sha256", action="store_true", help="hold the files without a SHA-256 (to rehearse "
                       "an unverifiable package)")
    serve.add_argument("--publish", action="store_true", help="also be the WSUS of twin labs run with the same "
                       "PATCHGATE_STATE_DIR: their VMs are offered what it approves (a WSUS outside the lab, "
                       "labs/twin-wsus-external.example.yaml, docs/wsus.md; export PATCHGATE_LAB_USERNAME/PASSWORD "
                       "as the same account)")
    serve.add_argument("--lab-out", metavar="FILE", help="write labs/twin-wsus-external.example.yaml with this "
                       "server's port to FILE (use with --publish and --name wsus-ext-01)")
    serve.set_defaults(func=_serve(lazy))


def _serve(lazy: Callable[[str, str], Any]) -> Callable[[Any], int]:
    run = lazy("patchgate_twin.production", "cmd_serve")

    def with_defaults(args: Any) -> int:
        args.group = args.group or ["ring1-servers", "ring2-servers", "ring2-sql"]
        args.candidate = args.candidate or ["KB5070893", "KB5070881"]
        return int(run(args))

    return with_defaults
