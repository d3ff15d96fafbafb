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

import hashlib
import math
import re
from typing import Iterable, Mapping, Protocol, Sequence, TypeVar

from rootwatch.core.errors import RootwatchError


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


HEADROOM = 0.8
SCHEMA = "rootwatch.shards/v1"
_NAME_RE = re.compile(r"^shard-([1-9][0-9]*)$")

A = TypeVar("A", bound=_HasId)


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
