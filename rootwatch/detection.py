"""What counts as root-user activity, defined once.

Every deployed form (CIS metric filter, extended metric filter, EventBridge
patterns) and the offline classifier are rendered from the definitions here.
"""

from __future__ import annotations

# Security Hub control CloudWatch.1 remediation text, byte for byte. Security
# Hub and Prowler compare this textually: never edit it, add detection elsewhere.
CIS_PATTERN = '{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType !="AwsServiceEvent"}'
CIS_METRIC_NAME = "RootAccountUsage"
