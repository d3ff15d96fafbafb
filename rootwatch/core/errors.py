"""Errors that reach users as one clear line (exit code 2), never a traceback."""

from __future__ import annotations


class RootwatchError(Exception):
    """Bad input: config, files, CLI arguments or unreachable accounts.

    The message must name the offending key, file or account. The CLI prints it
    as one line and exits 2.
    """


class ConfigError(RootwatchError):
    """Stack configuration failed validation; the message lists every bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))
