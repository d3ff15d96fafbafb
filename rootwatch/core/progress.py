"""A small progress indicator on stderr for long work (silent when not a TTY unless forced)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "auditing") as p: ... p.advance(label)``.

    Draws a bar on a TTY; otherwise prints a line every ``every`` items so CI
    logs still show movement without flooding.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, every: int = 50) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.every = max(1, every)
        self.done = 0
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> "Progress":
        return self

    def advance(self, item: str = "") -> None:
        self.done += 1
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {item[:30]:<30}")
            self.stream.flush()
        elif self.done % self.every == 0 or self.done == self.total:
            self.stream.write(f"{self.label}: {self.done}/{self.total}\n")

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self.stream.write(f"\r{self.label}: {self.done}/{self.total} in {time.monotonic() - self.start:.1f}s" + " " * 40 + "\n")
