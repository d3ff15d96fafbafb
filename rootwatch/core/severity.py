"""Alert severity levels, ordered so that the higher of two can be taken."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self) -> list["Severity"]:
        """This level and every level above it, lowest first."""
        return [s for s in ORDERED if s.rank >= self.rank]


ORDERED: tuple[Severity, ...] = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
_RANK = {s: i for i, s in enumerate(ORDERED)}


def highest(*levels: Severity) -> Severity:
    return max(levels, key=lambda s: s.rank)
