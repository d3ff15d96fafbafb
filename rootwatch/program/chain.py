"""The per-account chain's contract: its component type, fixed resource names and typed arguments.

Shared by ``monitor`` (the component) and the modules that build its parts (``alerting``,
``realtime``), so no part imports the component. Names here are in every account: changing one
renames cloud resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from rootwatch.core.severity import Severity
from rootwatch.program.organization import Account
from rootwatch.program.settings import RootwatchSettings, Subscription

COMPONENT_TYPE = "rootwatch:index:RootActivityMonitor"
LOG_GROUP_NAME = "/rootwatch/cloudtrail"
METRIC_FILTER_NAME = "rootwatch-root-usage"
ALARM_NAME = "rootwatch-root-activity"
TRAIL_ROLE_NAME = "rootwatch-cloudtrail-to-logs"


@dataclass(frozen=True)
class HubRef:
    """The alert hub as members see it: account and region (its ARNs are computed from names,
    so member stacks and shards need no stack reference)."""

    account_id: str
    region: str


@dataclass(frozen=True)
class RootActivityMonitorArgs:
    account: Account
    settings: RootwatchSettings
    # The account's baseline level: the alarm publishes to this level's route.
    severity: Severity
    # Levels that get a topic (baseline first); every one has subscribers.
    levels: Sequence[Severity]
    routes: Mapping[Severity, Sequence[Subscription]]
    secret_endpoints: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    hub: HubRef | None = None
    # trail.archive: the log archive's resources a replication configuration must wait for.
    archive_ready: Sequence[Any] = ()
