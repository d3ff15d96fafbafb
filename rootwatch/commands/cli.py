"""The `rootwatch` command line: one entry point, one module per subcommand.

Each command module exposes ``add_parser(subparsers)``, which registers the
subcommand and sets ``func`` to a ``run(args) -> int``. Modules import their heavy
dependencies (pulumi, boto3) inside ``run`` so that start-up stays fast.

Exit codes: 0 ok, 1 findings, 2 usage or input error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import Any, Sequence

from rootwatch.commands.options import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from rootwatch.core.errors import RootwatchError

# Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "rootwatch.commands.init",
    "rootwatch.commands.plan",
    "rootwatch.commands.org",
    "rootwatch.commands.audit",
    "rootwatch.commands.cost",
    "rootwatch.commands.drill",
    "rootwatch.commands.replay",
    "rootwatch.commands.policycheck",
    "rootwatch.commands.enroll",
    "rootwatch.commands.shards",
    "rootwatch.commands.incidents",
    "rootwatch.commands.report",
    "rootwatch.commands.playbook",
)

# Commands whose own clean-up must run on Ctrl-C (drill restores the alarm and deletes
# its queue): the first Ctrl-C raises KeyboardInterrupt there, a second one exits at once.
# Every other command exits at once: nothing to undo, and output files are written
# whole or not at all (core.atomicfile), so there is nothing half-written to leave.
GRACEFUL_COMMANDS = frozenset({"drill"})
INTERRUPTED_LINE = "rootwatch: interrupted"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default also exits 2
        # One line, then where to look (not the whole usage block).
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f"rootwatch {command} --help" if command else "rootwatch --help"
        print(f"{self.prog}: error: {message} (see `{hint}`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rootwatch")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rootwatch", description="Detect and alert on AWS root-user activity across an organization.",
                     epilog="Exit codes: 0 ok, 1 findings, 2 usage or input error, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"rootwatch {_version()}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or status lines on stderr (errors still appear)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


class _Interrupts:
    """SIGINT handling: one line on stderr, exit 130, no traceback, within a second.

    The Pulumi mock runtime runs the plan in an asyncio loop with worker threads: a
    KeyboardInterrupt raised there is swallowed, hangs on thread shutdown or surfaces
    as "Leaving task ... does not match the current task". So, outside the graceful
    commands, the handler removes temp files being written and ends the process itself.
    """

    def __init__(self, graceful: bool) -> None:
        self.graceful = graceful
        self.hits = 0
        self.previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)

    def uninstall(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def handle(self, signum: int, frame: Any) -> None:
        self.hits += 1
        if self.graceful and self.hits == 1:
            raise KeyboardInterrupt
        exit_interrupted()


def exit_interrupted() -> None:
    """Remove half-written outputs, print the one line, and end the process with 130."""
    from rootwatch.core import atomicfile

    atomicfile.remove_pending()
    try:
        # A progress bar may be mid-line on a terminal: start the message on its own line.
        lead = "\n" if sys.stderr.isatty() else ""
        os.write(2, f"{lead}{INTERRUPTED_LINE}\n".encode())
    except (OSError, ValueError):
        pass
    os._exit(EXIT_INTERRUPTED)  # noqa: SLF001 - skip thread joins and atexit: they are what hangs


def main(argv: Sequence[str] | None = None) -> int:
    from rootwatch.commands import options
    from rootwatch.core import progress

    parser = build_parser()
    args = parser.parse_args(argv)
    options.QUIET = progress.QUIET = bool(args.quiet)
    interrupts = _Interrupts(graceful=args.command in GRACEFUL_COMMANDS)
    interrupts.install()
    try:
        return int(args.func(args))
    except RootwatchError as exc:
        print(f"rootwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(INTERRUPTED_LINE, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # never a traceback for users; opt in for debugging
        if os.environ.get("ROOTWATCH_DEBUG"):
            raise
        print(f"rootwatch: internal error: {type(exc).__name__}: {exc} (set ROOTWATCH_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_USAGE
    finally:
        interrupts.uninstall()
        options.QUIET = progress.QUIET = False


if __name__ == "__main__":
    sys.exit(main())
