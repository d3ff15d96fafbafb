"""Stack outputs: per-account identifiers (and, with compliance, the evidence)."""

from __future__ import annotations

from typing import Mapping

import pulumi

from rootwatch.alerting import route_summary
from rootwatch.monitor import RootActivityMonitor
from rootwatch.organization import Scope


def export(scope: Scope, monitors: Mapping[str, RootActivityMonitor]) -> None:
    pulumi.export(
        "accounts",
        {
            acct_id: {
                "name": m.account.name,
                "ou": m.account.ou_name or m.account.ou,
                "severity": m.severity.value,
                # Protocol counts per level: endpoints may be secrets.
                "routes": {lvl.value: route_summary(m.routes.get(lvl, ())) for lvl in m.levels},
                "trailArn": m.trail_arn,
                "logGroupName": m.log_group_name,
                "metricFilterName": m.metric_filter_name,
                "alarmArn": m.alarm_arn,
                "topicArns": {lvl.value: arn for lvl, arn in m.topic_arns.items()},
            }
            for acct_id, m in monitors.items()
        },
    )
    pulumi.export("skipped", [{"id": s.id, "name": s.name, "reason": s.reason} for s in scope.skipped])
