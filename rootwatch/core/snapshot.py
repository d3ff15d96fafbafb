"""Organization snapshots: an offline copy of what the Organizations API returns.

Format (JSON)::

    {"managementAccountId": "111111111111",
     "organizationalUnits": {"ou-ab12-prod0001": "production"},   # optional names
     "accounts": [{"id": "222222222222", "name": "payments-prod", "email": "...",
                   "state": "ACTIVE", "ouPath": "r-ab12/ou-ab12-prod0001", "tags": {}}]}

``ouPath`` lists the ids from the root to the account's parent. ``state`` is
ACTIVE, SUSPENDED, PENDING_CLOSURE or CLOSED. ``rootwatch plan`` and the tests
answer the program's organization look-ups from a snapshot; ``rootwatch org
snapshot`` writes one from a live organization.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from rootwatch.core.errors import RootwatchError

STATES = ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "CLOSED")
# Written by `rootwatch org snapshot`; optional when reading (hand-written snapshots).
SCHEMA = "rootwatch.orgsnapshot/v1"
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_PATH_PART_RE = re.compile(r"^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$")


@dataclass(frozen=True)
class SnapshotAccount:
    id: str
    name: str
    email: str
    state: str
    ou_path: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    management_account_id: str
    accounts: tuple[SnapshotAccount, ...]
    ou_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def root_id(self) -> str:
        return self.accounts[0].ou_path[0]

    def children_ous(self, parent: str) -> list[str]:
        """Direct child OUs of ``parent``, in first-seen order."""
        seen: dict[str, None] = {}
        for a in self.accounts:
            path = a.ou_path
            for i in range(len(path) - 1):
                if path[i] == parent:
                    seen.setdefault(path[i + 1])
        return list(seen)

    def child_accounts(self, parent: str) -> list[SnapshotAccount]:
        return [a for a in self.accounts if a.ou_path[-1] == parent]

    def descendant_accounts(self, parent: str) -> list[SnapshotAccount]:
        return [a for a in self.accounts if parent in a.ou_path]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "managementAccountId": self.management_account_id,
            "organizationalUnits": dict(self.ou_names),
            "accounts": [
                {"id": a.id, "name": a.name, "email": a.email, "state": a.state,
                 "ouPath": "/".join(a.ou_path), "tags": dict(a.tags)}
                for a in self.accounts
            ],
        }


def parse(data: Any, source: str = "snapshot") -> Snapshot:
    """Validate a decoded snapshot; errors name the file and the offending entry."""

    def bad(msg: str) -> RootwatchError:
        return RootwatchError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise bad("must be a JSON object with managementAccountId and accounts")
    if data.get("schema", SCHEMA) != SCHEMA:
        raise bad(f"schema {data.get('schema')!r} is not {SCHEMA}")
    mgmt = data.get("managementAccountId")
    if not isinstance(mgmt, str) or not _ACCOUNT_RE.match(mgmt):
        raise bad("managementAccountId must be a 12-digit account id")
    raw_accounts = data.get("accounts")
    if not isinstance(raw_accounts, list) or not raw_accounts:
        raise bad("accounts must be a non-empty list")
    ou_names = data.get("organizationalUnits", {}) or {}
    if not isinstance(ou_names, dict):
        raise bad("organizationalUnits must be an object of id -> name")
    accounts: list[SnapshotAccount] = []
    seen: set[str] = set()
    root: str | None = None
    for i, a in enumerate(raw_accounts):
        where = f"accounts[{i}]"
        if not isinstance(a, dict):
            raise bad(f"{where} must be an object")
        acct_id = a.get("id")
        if not isinstance(acct_id, str) or not _ACCOUNT_RE.match(acct_id):
            raise bad(f"{where}.id must be a 12-digit account id")
        if acct_id in seen:
            raise bad(f"{where}.id {acct_id} appears twice")
        seen.add(acct_id)
        state = a.get("state", "ACTIVE")
        if state not in STATES:
            raise bad(f"{where}.state must be one of {', '.join(STATES)}")
        path = tuple(p for p in str(a.get("ouPath", "")).split("/") if p)
        if not path or not path[0].startswith("r-") or not all(_PATH_PART_RE.match(p) for p in path):
            raise bad(f"{where}.ouPath must list ids from the root, e.g. r-ab12/ou-ab12-prod0001")
        root = root or path[0]
        if path[0] != root:
            raise bad(f"{where}.ouPath starts at {path[0]}, but the organization's root is {root}")
        tags = a.get("tags", {}) or {}
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise bad(f"{where}.tags must map strings to strings")
        name = a.get("name") or acct_id
        accounts.append(SnapshotAccount(acct_id, str(name), str(a.get("email", "")), state, path, tags))
    if mgmt not in seen:
        raise bad(f"managementAccountId {mgmt} is not among the accounts")
    return Snapshot(mgmt, tuple(accounts), {str(k): str(v) for k, v in ou_names.items()})


def load(path: str | Path) -> Snapshot:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise RootwatchError(f"{p}: org snapshot file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RootwatchError(f"{p}: cannot read org snapshot ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise RootwatchError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse(data, str(p))


def from_accounts(management_account_id: str, accounts: Iterable[SnapshotAccount], ou_names: Mapping[str, str] | None = None) -> Snapshot:
    return Snapshot(management_account_id, tuple(accounts), dict(ou_names or {}))
