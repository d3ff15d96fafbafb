"""The `rootwatch` command line: one entry point, one module per subcommand.

Each command module exposes ``add_parser(subparsers)``, which registers the
subcommand and sets ``func`` to a ``run(args) -> int``. Modules import their heavy
dependencies (pulumi, boto3) inside ``run`` so that start-up stays fast.

Exit codes: 0 ok, 1 findings, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from rootwatch.commands.options import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from rootwatch.core.errors import RootwatchError

# Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
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

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default also exits 2
        self.print_usage(sys.stderr)
        print(f"rootwatch: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rootwatch", description="Detect and alert on AWS root-user activity across an organization.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RootwatchError as exc:
        print(f"rootwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rootwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # never a traceback for users; opt in for debugging
        if os.environ.get("ROOTWATCH_DEBUG"):
            raise
        print(f"rootwatch: internal error: {type(exc).__name__}: {exc} (set ROOTWATCH_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
