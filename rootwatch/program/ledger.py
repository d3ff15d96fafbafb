"""The incident ledger's DynamoDB table, created by the alert hub (``rootwatch.program.hub``).

``incident_table`` is self-contained so the hub (which owns the formatter and
its role) can call it once, in the hub account, and grant its formatter
``formatter_ledger_statement``. The item layout is ``rootwatch.lambdas.ledger``'s.

What real AWS does with it, and why each setting:
- on-demand billing: a table that sees a few writes a quarter should cost nothing idle;
- point-in-time recovery: incidents are audit evidence (35 days of restores);
- encryption at rest is always on in DynamoDB; with ``kms_key_arn`` it uses
  that customer-managed key, whose key policy must let the formatter's role and
  the responders use it (kms:Decrypt, kms:GenerateDataKey*), else every write fails;
- deletion protection plus ``protect``: ``pulumi destroy`` must not erase the record;
- no TTL: MTTR and incidents per quarter need the history.
"""

from __future__ import annotations

from typing import Any, Mapping

import pulumi
import pulumi_aws as aws

from rootwatch.lambdas.ledger import DEFAULT_TABLE

# What the formatter does to record an alert (TransactWriteItems needs the per-item actions).
FORMATTER_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
# What `rootwatch incidents` needs besides those: list (Scan).
RESPONDER_ACTIONS = (*FORMATTER_ACTIONS, "dynamodb:Scan")


def incident_table(name: str = DEFAULT_TABLE, opts: pulumi.ResourceOptions | None = None, *,
                   region: str | None = None, kms_key_arn: pulumi.Input[str] | None = None,
                   protect: bool = True, tags: Mapping[str, str] | None = None) -> aws.dynamodb.Table:
    """The ledger table: partition key ``id`` (string), on demand, PITR, deletion-protected."""
    opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(protect=protect), opts)
    sse: dict[str, Any] = {"enabled": True, "kms_key_arn": kms_key_arn} if kms_key_arn else {"enabled": False}
    return aws.dynamodb.Table(
        name,  # the resource is named after the table: one ledger per name, stable URN
        name=name,
        billing_mode="PAY_PER_REQUEST",
        hash_key="id",
        attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
        point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
        # enabled=False is DynamoDB's default encryption with an AWS-owned key (never unencrypted).
        server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(**sse),
        deletion_protection_enabled=True,
        region=region,
        tags={"rootwatch": "incident-ledger", **(tags or {})},
        opts=opts,
    )


def formatter_ledger_statement(table_arn: str) -> dict[str, Any]:
    """The IAM statement the formatter's role needs to record incidents (and nothing else)."""
    return {"Sid": "RecordIncidents", "Effect": "Allow", "Action": list(FORMATTER_ACTIONS), "Resource": table_arn}
