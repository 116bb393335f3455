"""The ``patchgate`` command: one module per subcommand (each adds its parser and runs it), this one the frame.

Exit codes (docs/exit-codes.md): 0 approve, 1 block, 2 inconclusive, 3 internal error, 4 usage or configuration
error, 130 interrupted before a verdict could be written.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Sequence

from patchgate import __version__
from patchgate.cli.common import CLASSIFICATIONS, EPILOG, ROLES, Parser, fail, lazy
from patchgate.cli.table import COMMANDS
from patchgate.errors import EXIT_CONFIG, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_INTERRUPTED, ConfigError, PatchgateError

__all__ = ["CLASSIFICATIONS", "ROLES", "build_parser", "main", "run"]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program whose reader closed the pipe
COMMANDS_ENTRY_POINTS = "patchgate.commands"
"""Installed lab kinds add their subcommands here: a function taking the subparsers and the lazy loader."""


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser of every command; given the arguments, one that loads only the chosen command's module.

    With ``argv`` naming a command of the table (patchgate.cli.table), only its module is imported; otherwise
    (``--help``, no command, a command an installed lab kind adds, a typo) every command of the table is listed
    from its one-line help and the installed lab kinds add theirs, so help and "invalid choice" name them all.
    """
    import importlib

    parser = Parser(prog="patchgate", description="Decide whether a Windows update may be released: restore lab "
                    "VMs from snapshots, install the candidate, check that hotpatch enrollment, WSUS sync, service "
                    "health and firewall posture survive, and give a verdict with evidence.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"patchgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    if chosen:
        importlib.import_module(f"patchgate.cli.{COMMANDS[chosen].module}").add_command(sub)
        return parser
    for name, command in COMMANDS.items():
        if argv is not None:
            sub.add_parser(name, help=command.summary)  # listed, not loaded: it is not the one that runs
        elif name not in sub.choices:  # one module may add two commands (doctor and capture)
            importlib.import_module(f"patchgate.cli.{command.module}").add_command(sub)
    _add_installed_commands(sub)
    return parser


def _add_installed_commands(sub: Any) -> None:
    from importlib import metadata

    for entry in metadata.entry_points(group=COMMANDS_ENTRY_POINTS):  # subcommands of installed lab kinds
        entry.load()(sub, lazy)


def main(argv: Sequence[str] | None = None) -> int:
    from patchgate.run.interrupts import StopOnce

    # one stop for SIGINT and SIGTERM alike, installed while both are still held back (patchgate.entry): an
    # interrupt that comes out of a library as another error (pydantic building a schema reports SchemaError)
    # is still known as one (patchgate.run.interrupts.stop_requested); `validate` forwards them instead
    stop = StopOnce()
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(argv: Sequence[str] | None) -> int:
    try:
        from patchgate.secrets import install_logging_redaction

        install_logging_redaction()  # before anything can log a secret (hvac, requests, pypsrp debug logs)
        # the subcommands' modules are imported with SIGINT and SIGTERM still held back (patchgate.entry): an
        # interrupt inside an import can surface as another error (a class body's __set_name__ wraps it in a
        # RuntimeError), so it is taken only once they are loaded, and arrives here as "interrupted"
        arguments = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser(arguments)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        args = parser.parse_args(arguments)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return fail(str(exc), EXIT_CONFIG)
    except PatchgateError as exc:
        from patchgate.secrets.redact import redactor

        return fail(redactor.redact(str(exc)), EXIT_INCONCLUSIVE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader went away (`| head`): what it did not read is not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush must not fail too
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug users
        from patchgate.run.interrupts import interrupted

        if interrupted(exc):  # Ctrl-C that came out of a library as another error
            return fail("interrupted", EXIT_INTERRUPTED)
        import traceback

        from patchgate.secrets.redact import redactor

        if _debug():
            traceback.print_exc()
        return fail(f"internal error: {exc.__class__.__name__}: {redactor.redact(str(exc))} "
                    "(set PATCHGATE_DEBUG=1 for the traceback)", EXIT_INTERNAL)


def _debug() -> bool:
    """PATCHGATE_DEBUG asks for tracebacks of internal errors (a value that is no boolean asks too)."""
    from patchgate.environment import environment

    try:
        return environment().debug
    except ConfigError:
        return True


def run() -> None:
    sys.exit(main())
