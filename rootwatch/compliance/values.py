"""Reading engine values: unknowns (a preview before deploy), secrets, JSON-encoded inputs,
and the per-resource list of problems.
"""


from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from rootwatch.compliance.model import (
    FAIL,
    LOG_GROUP_ARN_RE,
    PASS,
    PENDING,
    RESOURCE_SIG,
    SECRET,
    SECRET_SIG,
    SIG_KEY,
    UNKNOWN,
    UNKNOWN_SENTINELS,
)

# --- values --------------------------------------------------------------------------


def normalize(value: Any) -> Any:
    """Plain data: unknowns become UNKNOWN, secrets their value (or SECRET), refs their URN."""
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            if "value" in value:
                return normalize(value["value"])
            if "plaintext" in value:  # stack export --show-secrets: JSON text of the value
                try:
                    return normalize(json.loads(value["plaintext"]))
                except (TypeError, ValueError):
                    return value["plaintext"]
            return SECRET
        if sig == RESOURCE_SIG:
            return value.get("urn", UNKNOWN)
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if type(value).__name__ == "Unknown":  # pulumi.output.Unknown, without importing pulumi
        return UNKNOWN
    return value


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


def known_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def as_bool(value: Any, default: bool) -> bool | None:
    """True/False (also "true"/"false" as providers encode them); None when unknown."""
    if value is None:
        return default
    if is_unknown(value):
        return None
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_json(value: Any) -> Any:
    """Provider inputs and policies arrive JSON-encoded; objects pass through."""
    if isinstance(value, str) and not is_unknown(value):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def as_list(value: Any) -> list[Any]:
    value = parse_json(value)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def first_object(value: Any) -> Mapping[str, Any]:
    # Single-block inputs are objects; some state shapes keep them as 1-item lists.
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value if isinstance(value, Mapping) else {}


def num_text(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def log_group_from_arn(arn: Any) -> str | None:
    """``arn:aws:logs:REGION:ACCT:log-group:NAME:*`` -> NAME."""
    s = known_str(arn)
    m = LOG_GROUP_ARN_RE.match(s) if s else None
    return m.group(1) if m else None


@dataclass
class Problems:
    """What is wrong with one resource; unknown values are listed, never failed."""

    failures: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return FAIL if self.failures else PENDING if self.unknown else PASS

    def text(self) -> str:
        if self.failures:
            return "; ".join(self.failures)
        if self.unknown:
            return "cannot verify until deploy: " + ", ".join(self.unknown) + " not known yet"
        return ""


