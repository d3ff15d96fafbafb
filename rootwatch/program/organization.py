"""Which accounts the stack monitors, and the provider each one is deployed through.

Discovery uses the Organizations API through Pulumi invokes (synchronous, so the
account list is plain data before any resource is registered). Selection is a
pure function over that data.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from rootwatch.core.errors import RootwatchError
from rootwatch.core.severity import Severity
from rootwatch.program import shards
from rootwatch.program.settings import AccountMatch, RootwatchSettings

if TYPE_CHECKING:
    from rootwatch.core.snapshot import Snapshot

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str = ""
    state: str = ACTIVE
    # Ids from the root to the account's parent: ("r-ab12", "ou-ab12-prod0001").
    ou_path: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    is_management: bool = False
    # Display name of the parent OU, when known.
    ou_name: str = ""

    @property
    def ou(self) -> str:
        """The parent OU (or root) id; "" when unknown."""
        return self.ou_path[-1] if self.ou_path else ""


@dataclass(frozen=True)
class Skipped:
    id: str
    name: str
    reason: str


@dataclass(frozen=True)
class Scope:
    management_account_id: str | None
    accounts: tuple[Account, ...]
    skipped: tuple[Skipped, ...]
    # The alert hub's account (rootwatch:hub.accountId), found among all candidates (in scope or not).
    hub: Account | None = None
    # The organization's id (o-...), for the hub bus policy; None when unknown (source "list").
    organization_id: str | None = None


def matches(match: AccountMatch, account: Account) -> bool:
    """An AccountMatch holds when every criterion it sets holds."""
    if match.accounts and account.id not in match.accounts:
        return False
    if match.ous and not set(match.ous) & set(account.ou_path):
        return False
    if any(account.tags.get(k) != v for k, v in match.tags.items()):
        return False
    if match.name_glob and not fnmatch.fnmatchcase(account.name, match.name_glob):
        return False
    return True


def baseline_severity(settings: RootwatchSettings, account: Account) -> Severity:
    """The first matching severity rule wins; otherwise the default."""
    for rule in settings.severity.rules:
        if matches(rule.match, account):
            return rule.level
    return settings.severity.default


def select(candidates: Iterable[Account], settings: RootwatchSettings, management_account_id: str | None) -> Scope:
    """Apply state, include/exclude and shard selection; every account left out gets a reason."""
    acc = settings.accounts
    chosen: list[Account] = []
    skipped: list[Skipped] = []
    for a in sorted(candidates, key=lambda x: x.id):
        reason = None
        if a.state != ACTIVE:
            reason = f"account is {a.state}"
        elif a.id in acc.exclude_accounts:
            reason = "excluded by accounts.excludeAccounts"
        elif set(acc.exclude_ous) & set(a.ou_path):
            reason = "in an OU excluded by accounts.excludeOus"
        elif a.is_management and not acc.include_management:
            reason = "management account (accounts.includeManagement is false)"
        elif (acc.include_ous or acc.include_accounts) and not (
            a.id in acc.include_accounts or set(acc.include_ous) & set(a.ou_path)
        ):
            reason = "not in accounts.includeOus or accounts.includeAccounts"
        if reason:
            skipped.append(Skipped(a.id, a.name, reason))
        else:
            chosen.append(a)
    if settings.shard:
        chosen, out = shards.select(chosen, settings.shard, settings.shard_max_accounts)
        skipped.extend(Skipped(a.id, a.name, f"assigned to shard {s}") for a, s in out)
    return Scope(management_account_id, tuple(chosen), tuple(skipped))


def empty_scope_problem(settings: RootwatchSettings, scope: Scope) -> str | None:
    """Why a stack that selects no account is refused, naming the filters; None if any is selected.

    A stack copied from the example keeps its OU ids (ou-ex01-...), which match
    nothing in a real organization: planning it used to show "0 accounts" and exit 0.
    """
    if scope.accounts:
        return None
    acc = settings.accounts
    filters = [
        f"accounts.{name} [{', '.join(values)}]"
        for name, values in (
            ("includeOus", acc.include_ous), ("includeAccounts", acc.include_accounts),
            ("excludeOus", acc.exclude_ous), ("excludeAccounts", acc.exclude_accounts),
        )
        if values
    ]
    if settings.shard:
        filters.append(f"shard {settings.shard}")
    reasons: dict[str, int] = {}
    for s in scope.skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    seen = "; ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "the organization has no accounts"
    return (
        f"no account is in scope: {' and '.join(filters) or 'the account filters'} select none of the "
        f"{len(scope.skipped)} accounts ({seen}); fix the filters for this organization "
        "(`rootwatch init --org-snapshot FILE` writes a stack with its real OU ids)"
    )


def _needs_tags(settings: RootwatchSettings) -> bool:
    return any(r.match.tags for r in settings.severity.rules)


def find_hub(settings: RootwatchSettings, candidates: Iterable[Account]) -> Account:
    """The hub account among every account of the organization (or the explicit list), refused
    with one line naming the key when it is missing, unknown or not active."""
    from rootwatch.core.errors import ConfigError

    if settings.hub is None:
        raise ConfigError(["rootwatch:hub.accountId: required: the account that receives every alert and holds "
                           "the human routes (usually a security-tooling account)"])
    wanted = settings.hub.account_id
    found = next((a for a in candidates if a.id == wanted), None)
    where = "accounts.list" if settings.accounts.source == "list" else "the organization"
    if found is None:
        raise ConfigError([f"rootwatch:hub.accountId: account {wanted} is not in {where}"])
    if found.state != ACTIVE:
        raise ConfigError([f"rootwatch:hub.accountId: account {wanted} is {found.state}, not ACTIVE"])
    return found


def with_hub(scope: Scope, settings: RootwatchSettings, candidates: Iterable[Account], org_id: str | None) -> Scope:
    from dataclasses import replace

    return replace(scope, hub=find_hub(settings, candidates), organization_id=org_id)


def discover(settings: RootwatchSettings) -> Scope:
    """Resolve the accounts in scope: from config (source 'list') or the Organizations API.

    Refuses (RootwatchError, one line) rather than quietly deploying nothing or
    offboarding accounts: see ``check_caller`` and ``check_removals``.
    """
    import pulumi_aws as aws

    caller = aws.get_caller_identity().account_id
    if settings.accounts.source == "list":
        # The caller's own account is deployed with its credentials, never by assuming a role into itself.
        accounts = [
            Account(e.id, e.name, e.email or "", ACTIVE, (e.ou,) if e.ou else (), e.tags, e.id == caller)
            for e in settings.accounts.list
        ]
        org_id = settings.hub.organization_id if settings.hub else None
        selected = select(accounts, settings, caller if any(a.is_management for a in accounts) else None)
    else:
        accounts, management_id, org_id = _walk_organization(settings, aws.organizations)
        check_caller(caller, management_id, accounts, lambda: _delegated_admins(aws.organizations))
        selected = select(accounts, settings, management_id)
    # Filters that fit no account say so first: the example stack on a real organization
    # would otherwise be refused for its hub id, hiding that none of its OU ids exist there.
    if (empty := empty_scope_problem(settings, selected)) is not None:
        raise RootwatchError(empty)
    scope = with_hub(selected, settings, accounts, org_id)
    check_removals(settings, scope)
    return scope


def _delegated_admins(orgs: object) -> set[str]:
    result = orgs.get_delegated_administrators()  # type: ignore[attr-defined]
    return {a.id for a in (result.delegated_administrators or [])}


def check_caller(
    caller: str | None, management_id: str | None, accounts: list[Account], delegated: Callable[[], set[str]]
) -> None:
    """The Organizations data source swallows AccessDenied: from an account that is neither the
    management account nor a delegated administrator it returns no accounts and no error."""
    who = caller or "(unknown)"
    # Checked first: a caller without access sees an empty organization, and asking it for the
    # delegated administrators would fail with AccessDenied (an invoke error fails the whole run).
    if not accounts:
        role = "" if caller == management_id else (
            f", which is neither the management account ({management_id or 'unknown'}) nor a registered delegated "
            "administrator; deploy from one of them or use accounts.source 'list'")
        raise RootwatchError(f"discovery refused: the organization returned no accounts to caller account {who}{role}")
    if caller != management_id and caller not in delegated():
        raise RootwatchError(
            f"discovery refused: caller account {who} is neither the management account ({management_id or 'unknown'}) "
            "nor a registered delegated administrator; deploy from one of them or use accounts.source 'list'"
        )


def check_removals(settings: RootwatchSettings, scope: Scope) -> None:
    """Refuse to drop more than accounts.maxRemovedFraction of the accounts the stack already manages."""
    acc = settings.accounts
    previous = set(acc.previously_managed)
    if not previous or acc.allow_mass_removal:
        return
    removed = previous - {a.id for a in scope.accounts}
    if len(removed) > acc.max_removed_fraction * len(previous):
        raise RootwatchError(
            f"discovery refused: it would remove {len(removed)} of the {len(previous)} accounts this stack manages "
            f"(more than accounts.maxRemovedFraction {acc.max_removed_fraction:g}), e.g. {', '.join(sorted(removed)[:3])}; "
            "check accounts.includeOus and the deployer's permissions, or set accounts.allowMassRemoval for one update"
        )


def _walk_organization(settings: RootwatchSettings, orgs: object) -> tuple[list[Account], str, str | None]:
    """Read the organization: accounts and states, then the OU tree for each account's path."""
    org = orgs.get_organization()  # type: ignore[attr-defined]
    mgmt = org.master_account_id
    paths: dict[str, tuple[str, ...]] = {}
    ou_names: dict[str, str] = {}
    roots = [r.id for r in (org.roots or [])]
    ou_names.update({r.id: r.name for r in (org.roots or [])})

    def walk(parent: str, path: tuple[str, ...]) -> None:
        for child in orgs.get_organizational_unit_child_accounts(parent_id=parent).accounts or []:  # type: ignore[attr-defined]
            paths[child.id] = path
        for ou in orgs.get_organizational_units(parent_id=parent).children or []:  # type: ignore[attr-defined]
            ou_names[ou.id] = ou.name
            walk(ou.id, path + (ou.id,))

    for root in roots:
        walk(root, (root,))
    tags_of: Callable[[str], Mapping[str, str]] = (
        (lambda i: orgs.get_resource_tags(resource_id=i).tags or {})  # type: ignore[attr-defined]
        if _needs_tags(settings)
        else (lambda i: {})
    )
    accounts = []
    for a in org.accounts or []:
        state = a.state or a.status or ACTIVE
        path = paths.get(a.id, ())
        accounts.append(
            Account(a.id, a.name, a.email, state, path, tags_of(a.id) if state == ACTIVE else {}, a.id == mgmt,
                    ou_names.get(path[-1], "") if path else "")
        )
    return accounts, mgmt, getattr(org, "id", None) or None


def provider_for(account: Account, settings: RootwatchSettings, stack: str) -> "object":
    """The account's explicit provider, pinned to it with ``allowed_account_ids``.

    A wrong role ARN or the wrong credentials fail instead of deploying into another
    account. The management account's provider assumes no role: it uses the
    deployer's own credentials (never a role assumed into itself).
    """
    import pulumi
    import pulumi_aws as aws

    from rootwatch.core.arns import partition

    access = settings.access
    assume = None
    if not account.is_management:
        role_arn = f"arn:{partition(settings.home_region)}:iam::{account.id}:role/{access.role_name}"
        external_id = access.external_id
        assume = [
            aws.ProviderAssumeRoleArgs(
                role_arn=role_arn,
                session_name=access.session_name,
                external_id=pulumi.Output.secret(external_id) if external_id else None,
            )
        ]
    return aws.Provider(
        f"account-{account.id}",
        region=settings.home_region,
        assume_roles=assume,
        allowed_account_ids=[account.id],
        default_tags=aws.ProviderDefaultTagsArgs(tags=managed_tags(stack)),
    )


def managed_tags(stack: str) -> dict[str, str]:
    return {"rootwatch:managed": "true", "rootwatch:stack": stack}


# --- the account set from an org snapshot (plan, shards, enroll) --------------------------------------------


def accounts_from_snapshot(org: Snapshot) -> list[Account]:
    """The accounts the program would discover, built from an org snapshot."""
    return [
        Account(a.id, a.name, a.email, a.state, a.ou_path, dict(a.tags), a.id == org.management_account_id,
                org.ou_names.get(a.ou_path[-1], "") if a.ou_path else "")
        for a in org.accounts
    ]


def program_scope(settings: RootwatchSettings, org: Snapshot) -> Scope:
    """The accounts that pass the stack's filters, before any sharding (as discover does)."""
    unsharded = settings.model_copy(update={"shard": None})
    if settings.accounts.source == "list":
        candidates = [
            Account(e.id, e.name, e.email or "", ACTIVE, (e.ou,) if e.ou else (), e.tags)
            for e in settings.accounts.list
        ]
        return select(candidates, unsharded, None)
    return select(accounts_from_snapshot(org), unsharded, org.management_account_id)
