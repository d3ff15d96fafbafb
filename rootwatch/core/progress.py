"""A small progress indicator on stderr for long work (silent when not a TTY unless forced)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Set by the CLI's --quiet: no progress at all.
QUIET = False


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
        if QUIET:
            return
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {item[:30]:<30}")
            self.stream.flush()
        elif self.done % self.every == 0 or self.done == self.total:
            self.stream.write(f"{self.label}: {self.done}/{self.total}\n")

    def __exit__(self, *exc: object) -> None:
        if self.tty and not QUIET:
            self.stream.write(f"\r{self.label}: {self.done}/{self.total} in {time.monotonic() - self.start:.1f}s" + " " * 40 + "\n")


class Counter:
    """A one-line running count on a terminal (``planning: 120 accounts, 5,040 resources``).

    Redrawn at most every ``interval`` seconds; silent when the stream is not a TTY
    (CI logs get the final summary instead) or under --quiet.
    """

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.2, force: bool = False) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.active = (force or bool(getattr(self.stream, "isatty", lambda: False)())) and not QUIET
        self.counts: dict[str, int] = {}
        self.last = 0.0
        self.drawn = False

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n
        if self.active:
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                self.draw()

    def draw(self) -> None:
        parts = ", ".join(f"{n:,} {what}" for what, n in self.counts.items())
        self.stream.write(f"\r{self.label}: {parts}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.active and self.drawn:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
