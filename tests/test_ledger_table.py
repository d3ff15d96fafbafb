"""The ledger table resource, registered by a tiny program under the mock runtime (the hub will call it)."""

from __future__ import annotations

from pathlib import Path

from rootwatch.program import mockrun
from rootwatch.program.ledger import FORMATTER_ACTIONS, formatter_ledger_statement

PROGRAM = """
import pulumi
from rootwatch.program.ledger import incident_table

incident_table("rootwatch-incidents", region="us-east-1")
incident_table("ledger-cmk", pulumi.ResourceOptions(protect=False, aliases=[]), region="eu-west-1",
               kms_key_arn="arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab")
"""


def test_the_table_is_on_demand_recoverable_and_protected(tmp_path: Path) -> None:
    program = tmp_path / "ledger_program.py"
    program.write_text(PROGRAM)
    run = mockrun.run("example", program=program)
    # Registration order is not guaranteed (registrations are asynchronous): pick by name.
    tables = {r.name: r for r in run.by_type("aws:dynamodb/table:Table")}
    plain, cmk = tables["rootwatch-incidents"], tables["ledger-cmk"]
    assert plain.inputs["name"] == plain.name == "rootwatch-incidents" and plain.inputs["hashKey"] == "id"
    assert cmk.name == "ledger-cmk" and plain.urn != cmk.urn
    assert plain.inputs["attributes"] == [{"name": "id", "type": "S"}]
    assert plain.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert plain.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert plain.inputs["deletionProtectionEnabled"] is True and plain.protect is True
    assert plain.inputs["serverSideEncryption"] == {"enabled": False}  # DynamoDB's AWS-owned key
    assert "ttl" not in plain.inputs  # incidents are evidence: never expired
    assert cmk.inputs["region"] == "eu-west-1" and cmk.protect is False
    assert cmk.inputs["serverSideEncryption"]["kmsKeyArn"].endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")


def test_the_formatter_may_only_read_write_and_delete_items_of_the_table() -> None:
    arn = "arn:aws:dynamodb:us-east-1:111111111111:table/rootwatch-incidents"
    st = formatter_ledger_statement(arn)
    assert st["Resource"] == arn and st["Effect"] == "Allow"
    assert sorted(st["Action"]) == sorted(FORMATTER_ACTIONS) == ["dynamodb:DeleteItem", "dynamodb:GetItem",
                                                                 "dynamodb:PutItem"]
