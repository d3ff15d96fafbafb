"""docs/permissions.md: generated from the registered resources, current, and every action real."""

from __future__ import annotations

import json
import re

import botocore.loaders
import pytest

from rootwatch.program import mockrun, permissions

ACTION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return mockrun.run("example")


@pytest.fixture(scope="module")
def docs(run: mockrun.Run) -> dict:
    return permissions.policies(run)


def all_actions() -> set[str]:
    out = {a for acts in permissions.RESOURCE_ACTIONS.values() for a in acts}
    return out | {a for acts in permissions.INVOKE_ACTIONS.values() for a in acts}


def test_every_registered_resource_type_and_invoke_is_mapped() -> None:
    for stack in ("example", "explicit", "prevention"):
        r = mockrun.run(stack)
        # A new resource type without actions fails here (KeyError names it).
        permissions.actions_for({x.type for x in r.resources}, [t for t in r.invokes if t in permissions.INVOKE_ACTIONS])
        assert {t for t in r.invokes} <= set(permissions.INVOKE_ACTIONS), set(r.invokes) - set(permissions.INVOKE_ACTIONS)


def test_every_action_exists_in_botocores_service_models() -> None:
    loader = botocore.loaders.Loader()
    operations: dict[str, set[str]] = {}
    bad = []
    for action in sorted(all_actions()):
        assert ACTION_RE.match(action), action
        prefix, name = action.split(":")
        if action in permissions.IAM_ONLY_ACTIONS:
            continue
        service = permissions.BOTOCORE_SERVICE[prefix]
        if service not in operations:
            model = loader.load_service_model(service, "service-2")
            operations[service] = {op.lower() for op in model["operations"]}
        if name.lower() not in operations[service]:
            bad.append(action)
    assert bad == []


def test_a_misspelt_action_would_be_caught() -> None:
    model = botocore.loaders.Loader().load_service_model("cloudtrail", "service-2")
    assert "CreateTrail" in model["operations"] and "CreateTrails" not in model["operations"]


def test_the_policies_cover_what_the_program_creates(docs: dict) -> None:
    member = {a for st in docs["member"]["Statement"] for a in st["Action"]}
    assert {"cloudtrail:CreateTrail", "kms:CreateKey", "kms:EnableKeyRotation", "s3:PutBucketLogging",
            "logs:AssociateKmsKey", "iam:PassRole", "events:PutTargets", "sns:CreateTopic"} <= member
    assert not any(a.startswith("organizations:") for a in member)  # members never discover
    assert not any(a.startswith(("lambda:", "dynamodb:", "sqs:")) for a in member)  # members run no formatter
    # The hub account adds what only the hub has, and nothing a member policy already grants.
    hub = {a for st in docs["alertHub"]["Statement"] for a in st["Action"]}
    assert {"events:CreateEventBus", "events:PutPermission", "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping", "dynamodb:CreateTable", "dynamodb:UpdateContinuousBackups",
            "sqs:CreateQueue", "sqs:SetQueueAttributes", "iam:PassRole"} - member <= hub
    assert hub.isdisjoint(member) and not any(a.startswith("organizations:") for a in hub)
    mgmt = {a for st in docs["management"]["Statement"] for a in st["Action"]}
    assert {"organizations:ListAccounts", "organizations:ListDelegatedAdministrators", "sts:AssumeRole"} <= mgmt
    assume = next(st for st in docs["delegatedAdmin"]["Statement"] if st["Sid"] == "AssumeTheMemberRole")
    assert assume["Resource"] == "arn:aws:iam::*:role/OrganizationAccountAccessRole"
    assert not any(a == "*" or a.endswith(":*") for a in member | mgmt | hub)  # least privilege: no wildcards
    # Immutable logs, both ways (trail.objectLockDays in the account, trail.archive replication), whatever the run.
    assert {"s3:PutBucketObjectLockConfiguration", "s3:PutReplicationConfiguration", "s3:GetReplicationConfiguration"} <= member
    assert {a for st in docs["logArchive"]["Statement"] for a in st["Action"]} == set()


def test_the_management_policy_covers_prevention() -> None:
    docs = permissions.policies(mockrun.run("prevention"))
    mgmt = {a for st in docs["management"]["Statement"] for a in st["Action"]}
    assert {"organizations:CreatePolicy", "organizations:AttachPolicy", "organizations:EnableAWSServiceAccess",
            "iam:EnableOrganizationsRootSessions", "iam:EnableOrganizationsRootCredentialsManagement"} <= mgmt


def test_docs_permissions_md_is_current(docs: dict) -> None:
    text = (mockrun.PROJECT_DIR / "docs" / "permissions.md").read_text()
    assert text == permissions.render_markdown(docs), "regenerate: python -m rootwatch.program.permissions"
    blocks = re.findall(r"```json\n(.*?)\n```", text, re.S)
    assert [json.loads(b) for b in blocks] == [docs[k] for k in ("management", "delegatedAdmin", "member", "memberTrust",
                                                               "alertHub", "logArchive")]
