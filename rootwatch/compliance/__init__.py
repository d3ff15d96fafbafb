"""Is root-user activity detection complete in each account? One evaluation, three callers.

``evaluate()`` takes resources as (type, URN, properties, provider, dependencies),
the view the Pulumi engine and CrossGuard have, and returns a verdict per
account. The program's ``compliance`` stack output, the CrossGuard pack
(``rootwatch.compliance.policy``) and ``rootwatch policy check`` (over ``pulumi stack
export`` files) all call it, so the three cannot drift apart.

Per account, five checks, each pass / fail / pending / skipped / unverified with a reason:

1. ``trail``: a multi-region trail, logging, with log-file validation and
   read+write management events, delivering to CloudWatch Logs (log group kept
   at least ``min_retention_days``). With ``trail.mode: existing`` and no trail in
   the stack, the declared log group stands in for the trail (status ``unverified``).
2. ``metricFilter``: a filter on *that* log group with the byte-exact CIS pattern.
3. ``alarm``: an alarm on *that* filter's metric and namespace: Sum, threshold at
   most 1, ``>=``, period at most ``max_alarm_period_seconds``, actions enabled,
   an SNS action.
4. ``topic``: *that* topic has a subscription and is encrypted with a
   customer-managed key whose policy lets CloudWatch use it.
5. ``realtime``: when regions are required, an EventBridge root-activity rule in
   each, in state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS.

Resources belong to an account through their provider (``allowedAccountIds``,
else ARNs in the account's properties, else ``default_account_id``, else
"default"). Relationships are followed by value (ARN, name) and, where a value
is unknown or unmatched, by property dependencies, never by resource names.

Unknown values (a preview before the first deploy) never fail a check: the
check is "pending" ("cannot verify until deploy"), which is not compliant yet,
and ``pulumi up`` evaluates again with real values.

Modules: ``model`` (types and verdicts), ``values`` (engine values), ``rules`` (one resource),
``accounts`` (grouping), ``checks`` (the five checks), ``evaluation``; ``policy`` holds the
CrossGuard rules built on them. Pure Python: imports only ``core`` and ``detection``, never
pulumi, so the policy pack and the CLI stay light.
"""

from __future__ import annotations

from rootwatch.compliance.accounts import (  # noqa: F401 - the package's public API
    AccountResources,
    group_by_account,
    provider_urn,
)
from rootwatch.compliance.evaluation import (  # noqa: F401 - the package's public API
    account_evidence,
    evaluate,
    missing_account,
    summarize,
)
from rootwatch.compliance.model import (  # noqa: F401 - the package's public API
    ALARM,
    ALARM_TYPE,
    ALIAS_TYPE,
    ARN_ACCOUNT_RE,
    AWS_MANAGED_SNS_KEY,
    CHECKS,
    CLOUDWATCH_PRINCIPAL,
    DEFAULT_ACCOUNT,
    DEFAULT_MAX_ALARM_PERIOD_SECONDS,
    DEFAULT_MIN_RETENTION_DAYS,
    EVENT_RULE_TYPE,
    EVIDENCE_TYPES,
    FAIL,
    KEY_ACTIONS_NEEDED,
    KEY_TYPE,
    LOG_GROUP_ARN_RE,
    LOG_GROUP_TYPE,
    METRIC_FILTER,
    METRIC_FILTER_TYPE,
    PASS,
    PENDING,
    PROVIDER_TYPE,
    REALTIME,
    HARDENING,
    RESOURCE_SIG,
    SCHEMA,
    SECRET,
    SECRET_SIG,
    SIG_KEY,
    SKIPPED,
    SUBSCRIPTION_TYPE,
    TOPIC,
    TOPIC_TYPE,
    TRAIL,
    TRAIL_TYPE,
    UNKNOWN,
    UNKNOWN_SENTINELS,
    UNVERIFIED,
    AccountVerdict,
    CheckResult,
    PolicyInput,
    Requirements,
)
from rootwatch.compliance.rules import (  # noqa: F401 - the package's public API
    alarm_problems,
    is_aws_managed_sns_key,
    is_cis_alarm,
    is_cis_metric_filter,
    is_detection_trail,
    is_root_rule,
    is_sns_arn,
    key_policy_problems,
    pattern_problems,
    retention_problems,
    rule_problems,
    topic_encryption_problems,
    trail_problems,
)
from rootwatch.compliance.values import (  # noqa: F401 - the package's public API
    Problems,
    as_bool,
    as_list,
    as_number,
    first_object,
    is_unknown,
    known_str,
    log_group_from_arn,
    normalize,
    num_text,
    parse_json,
)
from rootwatch.detection.rule import CIS_PATTERN  # noqa: F401 - re-exported for callers checking the filter
