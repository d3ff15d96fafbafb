"""Which account a resource belongs to: by its provider's allowedAccountIds, else the ARNs in it.
"""


from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rootwatch.compliance.model import (
    ARN_ACCOUNT_RE,
    DEFAULT_ACCOUNT,
    PROVIDER_TYPE,
    PolicyInput,
)
from rootwatch.compliance.values import as_list, is_unknown, known_str

# --- accounts ------------------------------------------------------------------------


@dataclass
class AccountResources:
    id: str
    provider_urn: str
    region: str | None
    resources: list[PolicyInput]

    def of(self, typ: str) -> list[PolicyInput]:
        return [r for r in self.resources if r.type == typ]


def provider_urn(ref: str | None) -> str:
    """A provider reference ``<urn>::<id>`` (or a bare URN) -> the URN."""
    if not ref:
        return ""
    parts = ref.split("::")
    # urn:pulumi:STACK::PROJECT::TYPE::NAME has 4 parts; a reference adds the id.
    return "::".join(parts[:-1]) if len(parts) > 4 else ref


def _allowed_account(props: Mapping[str, Any]) -> str | None:
    ids = [str(i) for i in as_list(props.get("allowedAccountIds")) if not is_unknown(i)]
    return ids[0] if ids else None


def _arn_accounts(value: Any, out: Counter[str]) -> None:
    if isinstance(value, str):
        out.update(ARN_ACCOUNT_RE.findall(value))
    elif isinstance(value, Mapping):
        for v in value.values():
            _arn_accounts(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _arn_accounts(v, out)


def group_by_account(resources: Sequence[PolicyInput], default_account_id: str | None = None) -> list[AccountResources]:
    """Resources per account, through their provider. Every aws provider is an account, used or not."""
    providers = {r.urn: r for r in resources if r.type == PROVIDER_TYPE}
    by_provider: dict[str, list[PolicyInput]] = {urn: [] for urn in providers}
    for r in resources:
        if r.type.startswith("aws:"):
            by_provider.setdefault(provider_urn(r.provider), []).append(r)
    merged: dict[str, AccountResources] = {}
    for purn, members in by_provider.items():
        props = providers[purn].props if purn in providers else {}
        acct = _allowed_account(props)
        if acct is None:
            counts: Counter[str] = Counter()
            for m in members:
                _arn_accounts(m.props, counts)
            acct = counts.most_common(1)[0][0] if counts else (default_account_id or DEFAULT_ACCOUNT)
        region = known_str(props.get("region"))
        if acct in merged:
            merged[acct].resources.extend(members)
        else:
            merged[acct] = AccountResources(acct, purn, region, list(members))
    return [merged[k] for k in sorted(merged)]


