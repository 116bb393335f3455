"""The twin's subcommand of ``patchgate`` (registered under the ``patchgate.commands`` entry points)."""

from __future__ import annotations

from typing import Any, Callable


def add_commands(sub: Any, lazy: Callable[[str, str], Any]) -> None:
    twin = sub.add_parser("twin", help="list the twin's images and update behaviours",
                          description="List the twin's starting images and the updates (KBs) it knows how to "
                          "install, with what each does.", epilog="exit codes: 0 listed, 4 bad catalogue folder")
    twin.add_argument("--twin-catalog", action="append", default=[], metavar="DIR", dest="kind_catalogs")
    twin.set_defaults(func=lazy("patchgate_twin.listing", "cmd_list"))
