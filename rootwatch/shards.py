"""Shards: split a large organization into independent stacks of at most N accounts.

Each shard is its own stack (same config plus ``rootwatch:shard``), so each is an
independent ``pulumi up`` that can run side by side with the others.

Mechanism: a state-free rule, rendezvous (highest-random-weight) hashing with
bounded loads and headroom. No shard map to commit or keep in sync.

* Shard count: ``N = ceil(n / target)`` with ``target = floor(maxAccounts * 0.8)``.
  The 20 % headroom means that, as accounts come and go, N does not change.
* Every account ranks the N shards by ``sha256("<account id>/<shard index>")``
  and takes its top-ranked shard. Accounts are processed in id order, and an
  account skips a shard that already holds ``maxAccounts``. This is the bound.
  Because of the headroom the bound almost never applies, so an account's shard
  depends only on its own id and N.
* Adding or removing accounts therefore moves no other account while N stays the
  same. When N changes (every ``target`` accounts), about 1/N of the accounts
  move, all to or from the shard that was added or removed. That is the minimum
  for any rule that keeps no state. ``rootwatch shards --previous`` reports it
  before it happens.

Every shard stack and ``rootwatch shards`` must compute the assignment from the
same account set. That set is the accounts that pass the stack's state and
include/exclude filters. organization.select applies those filters before it
calls ``select``; the CLI applies them from the stack file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, TextIO, TypeVar

from rootwatch.errors import RootwatchError

if TYPE_CHECKING:
    from rootwatch.organization import Account, Scope
    from rootwatch.settings import RootwatchSettings
    from rootwatch.snapshot import Snapshot

HEADROOM = 0.8
SCHEMA = "rootwatch.shards/v1"
_NAME_RE = re.compile(r"^shard-([1-9][0-9]*)$")

A = TypeVar("A", bound="Account")


# --- the rule (pure) ------------------------------------------------------------------


def target_size(max_accounts: int) -> int:
    """Accounts a shard is planned for. The rest of maxAccounts is headroom for growth."""
    return max(1, math.floor(max_accounts * HEADROOM))


def shard_count(n_accounts: int, max_accounts: int) -> int:
    if max_accounts < 1:
        raise RootwatchError(f"shard max accounts must be at least 1 (got {max_accounts})")
    return max(1, math.ceil(n_accounts / target_size(max_accounts)))


def shard_name(index: int) -> str:
    """Names are unpadded and 1-based, so existing names never change as N grows."""
    return f"shard-{index + 1}"


def shard_names(n_accounts: int, max_accounts: int) -> list[str]:
    return [shard_name(i) for i in range(shard_count(n_accounts, max_accounts))]


def _score(account_id: str, index: int) -> int:
    # sha256, not hash(): Python salts str hashes per process, and every shard stack must agree.
    return int.from_bytes(hashlib.sha256(f"{account_id}/{index}".encode()).digest()[:8], "big")


def assign(account_ids: Iterable[str], max_accounts: int) -> dict[str, str]:
    """Account id -> shard name. It depends only on the set of ids, not on their order."""
    ids = sorted(set(account_ids))
    n_shards = shard_count(len(ids), max_accounts)
    load = [0] * n_shards
    out: dict[str, str] = {}
    for acct in ids:
        ranked = sorted(range(n_shards), key=lambda i: _score(acct, i), reverse=True)
        # Never empty: N * maxAccounts >= n, so some shard always has room.
        index = next(i for i in ranked if load[i] < max_accounts)
        load[index] += 1
        out[acct] = shard_name(index)
    return out


def by_shard(assignment: Mapping[str, str], max_accounts: int) -> dict[str, list[str]]:
    """Shard name -> sorted account ids, in shard order (empty shards included)."""
    groups: dict[str, list[str]] = {s: [] for s in shard_names(len(assignment), max_accounts)}
    for acct, s in sorted(assignment.items()):
        groups[s].append(acct)
    return groups


def moves(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(account, from, to) for every account in both assignments whose shard changed."""
    return [(a, before[a], after[a]) for a in sorted(before.keys() & after.keys()) if before[a] != after[a]]


def check_shard(shard: str, n_accounts: int, max_accounts: int) -> None:
    names = shard_names(n_accounts, max_accounts)
    if shard in names:
        return
    listed = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
    hint = " (names look like shard-1)" if not _NAME_RE.match(shard) else ""
    raise RootwatchError(
        f"rootwatch:shard {shard!r} does not exist{hint}: {n_accounts} account(s) at shardMaxAccounts "
        f"{max_accounts} make {len(names)} shard(s): {listed} (see `rootwatch shards`)"
    )


def select(accounts: Sequence[A], shard: str, max_accounts: int) -> tuple[list[A], list[tuple[A, str]]]:
    """This shard's accounts, and every other account with the shard it belongs to.

    ``accounts`` must be the filtered set (state, include/exclude), the same in
    every shard stack. An unknown shard name is a RootwatchError.
    """
    assignment = assign((a.id for a in accounts), max_accounts)
    check_shard(shard, len(assignment), max_accounts)
    mine = [a for a in accounts if assignment[a.id] == shard]
    others = [(a, assignment[a.id]) for a in accounts if assignment[a.id] != shard]
    return mine, others


# --- the account set, as the program computes it --------------------------------------------


def accounts_from_snapshot(org: "Snapshot") -> list["Account"]:
    """The accounts the program would discover, built from an org snapshot."""
    from rootwatch.organization import Account

    return [
        Account(a.id, a.name, a.email, a.state, a.ou_path, dict(a.tags), a.id == org.management_account_id,
                org.ou_names.get(a.ou_path[-1], "") if a.ou_path else "")
        for a in org.accounts
    ]


def program_scope(settings: "RootwatchSettings", org: "Snapshot") -> "Scope":
    """The accounts that pass the stack's filters, before any sharding (as organization.discover does)."""
    from rootwatch import organization

    unsharded = settings.model_copy(update={"shard": None})
    if settings.accounts.source == "list":
        candidates = [
            organization.Account(e.id, e.name, e.email or "", organization.ACTIVE, (e.ou,) if e.ou else (), e.tags)
            for e in settings.accounts.list
        ]
        return organization.select(candidates, unsharded, None)
    return organization.select(accounts_from_snapshot(org), unsharded, org.management_account_id)


# --- CLI: rootwatch shards --------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    from rootwatch.cli import add_format_option

    p = sub.add_parser(
        "shards",
        help="assign the organization's accounts to shard stacks",
        description="Show which shard stack (rootwatch:shard) deploys each account. The assignment is "
        "stable: adding or removing accounts moves no other account while the shard count stays the same, "
        "and no shard exceeds --max-accounts. Exit 0 ok, 1 --previous shows accounts that would move, "
        "2 usage/input errors.",
    )
    p.add_argument("--org-snapshot", required=True, metavar="FILE", help="organization snapshot (rootwatch org snapshot)")
    p.add_argument("--max-accounts", type=int, metavar="N", help="most accounts per shard (default: the stack's rootwatch:shardMaxAccounts, 200)")
    p.add_argument("--stack", default="example", help="stack whose account filters apply: stacks/Pulumi.<NAME>.yaml (default: example)")
    p.add_argument("--previous", metavar="FILE", help="an earlier org snapshot: report the accounts that would change shard")
    add_format_option(p)
    p.set_defaults(func=run)


def _settings(stack: str) -> "RootwatchSettings":
    from rootwatch import mockrun
    from rootwatch import settings as rw_settings

    config = mockrun.load_stack_config(stack, mockrun.PROJECT_DIR)  # looked up now: relocatable in tests
    try:
        return rw_settings.load(config.values)
    except RootwatchError as exc:
        raise RootwatchError(f"stack {stack}: {exc}") from None


def report(scope_ids: Sequence[str], max_accounts: int, stack: str, previous_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The assignment as plain data (schema rootwatch.shards/v1)."""
    assignment = assign(scope_ids, max_accounts)
    groups = by_shard(assignment, max_accounts)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "stack": stack,
        "maxAccounts": max_accounts,
        "targetAccounts": target_size(max_accounts),
        "accounts": len(assignment),
        "shards": [{"name": s, "count": len(ids), "accounts": ids} for s, ids in groups.items()],
        # Ready for a GitHub Actions matrix: fromJSON(...).matrix
        "matrix": {"include": [{"shard": s, "accounts": len(ids)} for s, ids in groups.items()]},
    }
    if previous_ids is not None:
        before = assign(previous_ids, max_accounts)
        moved = moves(before, assignment)
        kept = len(before.keys() & assignment.keys())
        out["previous"] = {
            "accounts": len(before),
            "shards": shard_count(len(before), max_accounts),
            "added": len(assignment.keys() - before.keys()),
            "removed": len(before.keys() - assignment.keys()),
            "moved": [{"id": a, "from": f, "to": t} for a, f, t in moved],
            "movedPercent": round(100 * len(moved) / kept, 2) if kept else 0.0,
        }
    return out


def render_text(rep: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"Stack {rep['stack']}: {rep['accounts']} account(s) in {len(rep['shards'])} shard(s) "
        f"(at most {rep['maxAccounts']} per shard, planned {rep['targetAccounts']})\n\n"
    )
    width = max(len("SHARD"), *(len(s["name"]) for s in rep["shards"]))
    out.write(f"{'SHARD':<{width}}  ACCOUNTS\n")
    for s in rep["shards"]:
        out.write(f"{s['name']:<{width}}  {s['count']}\n")
    prev = rep.get("previous")
    if prev is not None:
        out.write(
            f"\nSince the previous snapshot: {prev['added']} added, {prev['removed']} removed, "
            f"{len(prev['moved'])} moved ({prev['movedPercent']}% of the accounts in both)\n"
        )
        for m in prev["moved"]:
            out.write(f"  {m['id']}  {m['from']} -> {m['to']}\n")


def run(args: argparse.Namespace) -> int:
    from rootwatch import snapshot

    settings = _settings(args.stack)
    max_accounts = args.max_accounts if args.max_accounts is not None else settings.shard_max_accounts
    if max_accounts < 1:
        raise RootwatchError(f"--max-accounts must be at least 1 (got {max_accounts})")
    org = snapshot.load(args.org_snapshot)
    ids = [a.id for a in program_scope(settings, org).accounts]
    previous = None
    if args.previous:
        previous = [a.id for a in program_scope(settings, snapshot.load(args.previous)).accounts]
    rep = report(ids, max_accounts, args.stack, previous)
    if args.format == "json":
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(rep, sys.stdout)
    # A move means a migration between stacks: worth failing a CI check over.
    return 1 if rep.get("previous", {}).get("moved") else 0
