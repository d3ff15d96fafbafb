"""What every subcommand shares: exit codes and the --format option.

Commands import this, never ``cli`` (which imports the commands).
"""

from __future__ import annotations

import argparse

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Set by the entry point's --quiet: commands print no progress or status lines on
# stderr (errors and warnings still appear).
QUIET = False


def status(message: str) -> None:
    """An informational line on stderr, unless --quiet."""
    import sys

    if not QUIET:
        print(message, file=sys.stderr)


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
