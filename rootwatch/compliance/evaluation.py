"""The one evaluation (``evaluate``) and its evidence summary (``summarize``), used by the stack
output, the CrossGuard pack and ``rootwatch policy check``.
"""


from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from rootwatch.compliance.accounts import group_by_account, provider_urn
from rootwatch.compliance.checks import (
    ResourceIndex,
    SubscriptionIndex,
    check_alarm,
    check_filter,
    check_hardening,
    check_immutable_logs,
    check_realtime,
    check_topic,
    check_trail,
    organization_member,
)
from rootwatch.compliance.model import (
    CHECKS,
    FAIL,
    ORGANIZATION_TRAIL,
    SCHEMA,
    SUBSCRIPTION_TYPE,
    AccountVerdict,
    CheckResult,
    PolicyInput,
    Requirements,
)
from rootwatch.compliance.values import normalize

# --- evaluation ----------------------------------------------------------------------


def evaluate(
    resources: Iterable[PolicyInput],
    requirements: Requirements = Requirements(),
    default_account_id: str | None = None,
) -> dict[str, AccountVerdict]:
    """Every account's verdict: the one implementation behind outputs, the pack and `policy check`."""
    items = [PolicyInput(r.type, r.urn, normalize(dict(r.props)), provider_urn(r.provider), r.name, r.parent,
                         tuple(r.dependencies), {k: tuple(v) for k, v in r.property_dependencies.items()})
             for r in resources]
    idx = ResourceIndex(items)
    # Subscriptions may live in another account, so they are indexed across the whole stack.
    subs = SubscriptionIndex([r for r in items if r.type == SUBSCRIPTION_TYPE], idx)
    verdicts = {}
    for acct in group_by_account(items, default_account_id):
        trail, groups = check_trail(acct, idx, requirements)
        metric_filter, filters = check_filter(acct, idx, groups)
        alarm, alarm_res = check_alarm(acct, filters, requirements)
        topic = check_topic(acct, idx, alarm_res, subs)
        metric_filter, alarm, topic = organization_member(trail, (metric_filter, alarm, topic))
        realtime = check_realtime(acct, requirements)
        hardening = check_hardening(acct)
        checks = {c.check: c for c in (trail, metric_filter, alarm, topic, realtime, hardening)}
        verdicts[acct.id] = AccountVerdict(acct.id, acct.provider_urn, checks, check_immutable_logs(acct, idx))
    return verdicts


def missing_account(account_id: str) -> AccountVerdict:
    """An account in scope with nothing deployed for it."""
    reason = "nothing is deployed for this account in the stack"
    return AccountVerdict(account_id, "", {c: CheckResult(c, FAIL, reason) for c in CHECKS})


def account_evidence(verdict: AccountVerdict) -> dict[str, Any]:
    logs = verdict.immutable_logs
    return {
        "compliant": verdict.compliant,
        "status": verdict.status,
        "checks": {name: c.to_dict() for name, c in verdict.checks.items()},
        # Beside the checks, not in "compliant": can the account erase its own logs? (null: no trail of its own here)
        "immutableLogs": None if logs is None else {**logs.to_dict(), "ok": logs.status == "pass"},
    }


def summarize(
    verdicts: Mapping[str, AccountVerdict],
    in_scope: Sequence[str] | None = None,
    skipped: Sequence[Mapping[str, str]] = (),
    details: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``rootwatch.compliance/v1`` document (see docs/compliance.md).

    ``in_scope``: the accounts that must be covered (default: every account found);
    ``details``: extra per-account fields (severity, routes).
    """
    ids = list(in_scope) if in_scope is not None else sorted(verdicts)
    accounts: dict[str, Any] = {}
    for acct_id in ids:
        doc = account_evidence(verdicts.get(acct_id) or missing_account(acct_id))
        doc.update((details or {}).get(acct_id, {}))
        accounts[acct_id] = doc
    compliant = sum(1 for a in accounts.values() if a["compliant"])
    pending = sum(1 for a in accounts.values() if a["status"] == "pending")
    organization = sum(1 for a in accounts.values() if a["status"] == ORGANIZATION_TRAIL)
    return {
        "schema": SCHEMA,
        "accounts": accounts,
        "kpis": {
            "accountsInScope": len(ids),
            "accountsCompliant": compliant,
            "accountsPending": pending,
            # trail.mode organization members: not compliant (CloudWatch.1 is NO_DATA there), not failing either.
            "accountsOrganizationTrail": organization,
            # Percent of in-scope accounts with every check passing; null with no accounts.
            "policyComplianceScore": round(100 * compliant / len(ids), 1) if ids else None,
            # Accounts whose trail's log files no one in the account can delete (Object Lock here or in the archive).
            "accountsWithImmutableLogs": sum(1 for a in accounts.values() if (a.get("immutableLogs") or {}).get("ok")),
            "skippedAccounts": [dict(s) for s in skipped],
        },
    }
