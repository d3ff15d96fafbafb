"""rootwatch:prevention under mocks: the SCP compared in effect with Control Tower's, the org-level
resources and where they attach, the weakening rule, and the evidence in compliance and plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import pytest

from rootwatch.commands.cli import main
from rootwatch.compliance import policy
from rootwatch.compliance import prevention as ev
from rootwatch.core.errors import ConfigError
from rootwatch.detection import eventpattern
from rootwatch.detection import rule as detection
from rootwatch.detection.weakening import ROOT_RECREATION_EVENTS
from rootwatch.lambdas import formatter
from rootwatch.program import mockrun, realtime
from rootwatch.program import prevention as program
from rootwatch.program import settings as rw_settings

ROOT = Path(__file__).resolve().parent.parent
HUB = "222222222208"  # security-tooling, the example's alert hub
MGMT = "111111111111"
ROOT_ID = "r-ex01"
DEPLOYER = "arn:aws:sts::111111111111:assumed-role/platform-deployer/"


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return mockrun.run("prevention")


def by_type(r: mockrun.Run, typ: str) -> list[mockrun.Registered]:
    return r.by_type(typ)


# --- the SCP, in effect ---------------------------------------------------------------------


def test_the_scp_is_control_towers_control_with_assume_root_exempt() -> None:
    doc = json.loads(json.dumps(ev.deny_root_scp()))  # as deployed: parsed back from JSON
    (stmt,) = doc["Statement"]
    assert stmt["Effect"] == "Deny" and stmt["Action"] == "*" and stmt["Resource"] == "*"
    assert stmt["Condition"] == {"ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:root"]},
                                 "Null": {"aws:AssumedRoot": "true"}}
    assert ev.equivalence_problems(doc) == []
    root = "arn:aws:iam::222222222222:root"
    assert ev.denies(doc, ev.Request("s3:GetObject", "*", {"aws:PrincipalArn": root}))
    assert not ev.denies(doc, ev.Request("iam:DeleteLoginProfile", "*",
                                         {"aws:PrincipalArn": root, "aws:AssumedRoot": "true"}))
    assert not ev.denies(doc, ev.Request("s3:GetObject", "*",
                                         {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/admin"}))


def test_control_towers_own_artifact_differs_only_on_assume_root_sessions() -> None:
    problems = ev.equivalence_problems(ev.CONTROL_TOWER_RESTRICT_ROOT_USER)
    assert problems and all("AssumeRoot session" in p and p.startswith("denies") for p in problems)


def test_exempt_principals_are_exempt_and_nobody_else() -> None:
    exempt = ["arn:aws:iam::333333333333:root"]
    doc = json.loads(json.dumps(ev.deny_root_scp(exempt)))
    assert doc["Statement"][0]["Condition"]["ArnNotLike"] == {"aws:PrincipalArn": exempt}
    assert ev.equivalence_problems(doc, exempt) == []
    assert not ev.denies(doc, ev.Request("s3:GetObject", "*", {"aws:PrincipalArn": exempt[0]}))
    assert ev.denies(doc, ev.Request("s3:GetObject", "*", {"aws:PrincipalArn": "arn:aws:iam::444444444444:root"}))


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.update(Action="s3:*"), "allows"),                                   # narrower than '*'
    (lambda s: s["Condition"].pop("Null"), "denies"),                                # AssumeRoot not exempt
    (lambda s: s["Condition"].update(ArnLike={"aws:PrincipalArn": ["arn:aws:iam::*:*"]}), "for IAM role"),
    (lambda s: s.update(NotAction="iam:*"), "not modelled"),
])
def test_edited_scps_are_not_equivalent(edit: Any, words: str) -> None:
    doc = json.loads(json.dumps(ev.deny_root_scp()))
    edit(doc["Statement"][0])
    problems = ev.equivalence_problems(doc)
    assert problems and any(words in p for p in problems), problems


# --- the program with prevention on ------------------------------------------------------------


def test_the_plan_has_the_feature_resource_the_scp_and_its_attachments(run: mockrun.Run) -> None:
    (features,) = by_type(run, ev.ORG_FEATURES_TYPE)
    assert sorted(features.inputs["enabledFeatures"]) == ["RootCredentialsManagement", "RootSessions"]
    assert features.protect  # deleting it would switch centralized root access off
    (trusted,) = by_type(run, ev.SERVICE_ACCESS_TYPE)
    assert trusted.inputs["servicePrincipal"] == "iam.amazonaws.com" and trusted.retain_on_delete
    assert trusted.urn in features.dependencies
    (scp,) = by_type(run, ev.POLICY_TYPE)
    assert scp.inputs["type"] == "SERVICE_CONTROL_POLICY" and scp.inputs["name"] == "rootwatch-deny-root"
    assert json.loads(scp.inputs["content"]) == ev.deny_root_scp()
    attachments = by_type(run, ev.POLICY_ATTACHMENT_TYPE)
    assert [a.inputs["targetId"] for a in attachments] == [ROOT_ID]  # "root" resolved to the root id
    assert all(scp.urn in a.dependencies for a in attachments)


def test_org_resources_use_the_management_monitors_provider(run: mockrun.Run) -> None:
    mgmt_trail = next(r for r in run.by_type("aws:cloudtrail/trail:Trail") if f"rootwatch-{MGMT}" in r.urn)
    org = [r for r in run.resources if r.custom and "rootwatch-prevention" in r.name]
    assert len(org) >= 4 and {r.provider for r in org} == {mgmt_trail.provider}


@pytest.mark.parametrize("targets", [[MGMT], ["root", MGMT]])
def test_the_scp_is_never_attached_to_the_management_account(targets: list[str]) -> None:
    extra = {"rootwatch:prevention": json.dumps({"denyRootScp": {"enabled": True, "targets": targets}})}
    result = mockrun.run("example", extra_config=extra, check=False)
    assert isinstance(result.error, pulumi.RunError)
    assert str(result.error) == (f"rootwatch:prevention.denyRootScp.targets: {MGMT} is the management account; "
                                 "SCPs do not affect it (attach to the root or to OUs instead)")
    assert not result.by_type(ev.POLICY_TYPE) and not result.by_type(ev.POLICY_ATTACHMENT_TYPE)


def test_ou_and_member_targets_attach_where_configured() -> None:
    extra = {"rootwatch:prevention": json.dumps(
        {"denyRootScp": {"enabled": True, "targets": ["ou-ex01-prod0001", "222222222206"]}})}
    result = mockrun.run("example", extra_config=extra)
    assert sorted(a.inputs["targetId"] for a in result.by_type(ev.POLICY_ATTACHMENT_TYPE)) == \
        ["222222222206", "ou-ex01-prod0001"]
    assert not result.by_type(ev.ORG_FEATURES_TYPE)  # centralRootAccess stays off
    acc = result.outputs["compliance"]["accounts"]
    assert acc["222222222201"]["prevention"]["denyRootScp"] is True    # under the production OU
    assert acc["222222222206"]["prevention"]["denyRootScp"] is True    # attached directly
    assert acc["222222222210"]["prevention"]["denyRootScp"] is False   # another sandbox account
    assert acc[MGMT]["prevention"]["denyRootScp"] is None              # SCPs never apply to it


def test_prevention_is_off_by_default() -> None:
    result = mockrun.run("example")
    assert not [r for r in result.resources if r.type in ev.ORG_EVIDENCE_TYPES]
    org = result.outputs["compliance"]["organization"]
    assert org["centralRootAccess"]["enabled"] is False and org["denyRootScp"]["enabled"] is False


@pytest.mark.parametrize("value, words", [
    ({"denyRootScp": {"enabled": True}}, "rootwatch:prevention.denyRootScp: denyRootScp is enabled but has no targets"),
    ({"denyRootScp": {"targets": ["ou-bad"]}}, "rootwatch:prevention.denyRootScp.targets[0]: 'ou-bad' is not 'root'"),
    ({"denyRootScp": {"exemptPrincipalArns": ["root"]}}, "exemptPrincipalArns[0]: 'root' is not an IAM/STS principal"),
    ({"centralRootAcess": {}}, "rootwatch:prevention.centralRootAcess: unknown key (did you mean 'centralRootAccess'?)"),
    ({"centralRootAccess": {"trustedAccess": "maybe"}}, "rootwatch:prevention.centralRootAccess.trustedAccess"),
])
def test_prevention_settings_are_validated(value: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        rw_settings.load({"rootwatch:prevention": json.dumps(value)})
    assert words in str(exc.value)


def test_prevention_needs_the_organization_source() -> None:
    config = mockrun.load_stack_config("explicit").values
    with pytest.raises(ConfigError, match="prevention needs accounts.source 'organization'"):
        rw_settings.load({**config, "rootwatch:prevention": json.dumps({"centralRootAccess": {"enabled": True}})})


# --- weakening ----------------------------------------------------------------------------------


def _api_call(source: str, name: str, arn: str = "arn:aws:sts::111111111111:assumed-role/admin/eve",
              **params: Any) -> dict[str, Any]:
    return {"detail-type": "AWS API Call via CloudTrail", "source": f"aws.{source.split('.')[0]}",
            "detail": {"eventSource": source, "eventName": name, "requestParameters": params,
                       "userIdentity": {"type": "AssumedRole", "arn": arn}}}


def test_the_weakening_rule_is_in_the_management_account_and_targets_the_hub_bus(run: mockrun.Run) -> None:
    rules = [r for r in run.by_type("aws:cloudwatch/eventRule:EventRule") if r.name.startswith("rootwatch-prevention")]
    assert [r.inputs["name"] for r in rules] == [program.TAMPER_RULE_NAME]
    assert rules[0].inputs["region"] == "us-east-1" and rules[0].inputs["state"] == "ENABLED"
    pattern = json.loads(rules[0].inputs["eventPattern"])
    scp_id = by_type(run, ev.POLICY_TYPE)[0].inputs["name"]  # the mock gives the policy its name as id
    assert pattern == program.tamper_pattern(scp_id, DEPLOYER)
    target = next(r for r in run.by_type("aws:cloudwatch/eventTarget:EventTarget") if r.name.startswith("rootwatch-prevention"))
    assert target.inputs["targetId"] == realtime.HUB_TARGET_ID
    assert target.inputs["arn"] == realtime.hub_bus_arn(HUB, "us-east-1")
    assert target.inputs["roleArn"] == f"arn:aws:iam::{MGMT}:role/{realtime.FORWARDER_ROLE_NAME}"


def test_outside_us_east_1_the_global_events_also_reach_the_hub_bus() -> None:
    extra = {"rootwatch:homeRegion": "eu-west-1",
             "rootwatch:prevention": json.dumps({"centralRootAccess": {"enabled": True}})}
    result = mockrun.run("example", extra_config=extra)
    rules = {r.inputs["region"]: r for r in result.by_type("aws:cloudwatch/eventRule:EventRule")
             if r.inputs["name"] == program.TAMPER_RULE_NAME}
    assert set(rules) == {"eu-west-1", "us-east-1"}  # IAM/Organizations deliver to us-east-1 only
    targets = {r.inputs["region"]: r for r in result.by_type("aws:cloudwatch/eventTarget:EventTarget")
               if r.name.startswith("rootwatch-prevention")}
    # Both regions' rules send straight to the hub's bus (the example's hub is in us-east-1).
    assert {r: t.inputs["arn"] for r, t in targets.items()} == {
        "us-east-1": realtime.hub_bus_arn(HUB, "us-east-1"), "eu-west-1": realtime.hub_bus_arn(HUB, "us-east-1")}


@pytest.mark.parametrize("event, expected", [
    (_api_call("iam.amazonaws.com", "DisableOrganizationsRootCredentialsManagement"), True),
    (_api_call("iam.amazonaws.com", "DisableOrganizationsRootSessions"), True),
    (_api_call("iam.amazonaws.com", "EnableOrganizationsRootSessions"), False),
    (_api_call("organizations.amazonaws.com", "DetachPolicy", policyId="p-rootwatch", targetId=ROOT_ID), True),
    (_api_call("organizations.amazonaws.com", "UpdatePolicy", policyId="p-rootwatch"), True),
    (_api_call("organizations.amazonaws.com", "DeletePolicy", policyId="p-rootwatch"), True),
    (_api_call("organizations.amazonaws.com", "DetachPolicy", policyId="p-someoneelse"), False),
    (_api_call("organizations.amazonaws.com", "DisableAWSServiceAccess", servicePrincipal="iam.amazonaws.com"), True),
    (_api_call("organizations.amazonaws.com", "DisablePolicyType", rootId=ROOT_ID,
               policyType="SERVICE_CONTROL_POLICY"), True),
    (_api_call("sts.amazonaws.com", "AssumeRoot", targetPrincipal="222222222201",
               taskPolicyArn={"arn": "arn:aws:iam::aws:policy/root-task/IAMCreateRootUserPassword"}), True),
    (_api_call("sts.amazonaws.com", "AssumeRoot", targetPrincipal="222222222201",
               taskPolicyArn={"arn": "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"}), False),
    # The deployer's own changes (a pulumi up editing the SCP) are not alerts.
    (_api_call("organizations.amazonaws.com", "UpdatePolicy", arn=DEPLOYER + "ci", policyId="p-rootwatch"), False),
])
def test_the_weakening_pattern(event: dict[str, Any], expected: bool) -> None:
    pattern = program.tamper_pattern("p-rootwatch", DEPLOYER)
    assert eventpattern.matches(pattern, event) == expected
    if expected:  # and the formatter words it as a tamper alert
        assert formatter.is_tamper_call(event["detail"])


@pytest.mark.parametrize("name", ROOT_RECREATION_EVENTS)
def test_root_credential_recreation_in_members_reaches_the_root_rule(name: str) -> None:
    source = "signin.amazonaws.com" if name == "PasswordRecoveryRequested" else "iam.amazonaws.com"
    record = {"eventVersion": "1.08", "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
              "eventType": "AwsConsoleSignIn" if source.startswith("signin") else "AwsApiCall",
              "recipientAccountId": "222222222201",
              "userIdentity": {"type": "Root", "arn": "arn:aws:iam::222222222201:root", "accountId": "222222222201"}}
    assert eventpattern.matches(realtime.root_pattern(), detection.wrap_eventbridge(record))
    finding = detection.classify(record)
    assert finding is not None and finding.event_class is detection.EventClass.CREDENTIAL_CHANGE


# --- evidence: compliance output, policy pack, plan ---------------------------------------------


def test_compliance_output_has_org_and_per_account_evidence(run: mockrun.Run) -> None:
    doc = run.outputs["compliance"]
    org = doc["organization"]
    assert org["centralRootAccess"]["enabled"] is True and org["centralRootAccess"]["trustedAccess"] == "managed"
    assert org["denyRootScp"]["enabled"] is True and org["denyRootScp"]["targets"] == [ROOT_ID]
    assert org["denyRootScp"]["policies"][0]["equivalentToControlTower"] is True
    acc = doc["accounts"]
    # From config/example-posture.json; accounts it does not list are unknown.
    assert acc["222222222201"]["prevention"] == {"rootCredentials": "none", "denyRootScp": True}
    assert acc["222222222203"]["prevention"]["rootCredentials"] == "present"
    assert acc["222222222206"]["prevention"]["rootCredentials"] == "unknown"
    assert acc[MGMT]["prevention"] == {"rootCredentials": "unknown", "denyRootScp": None}
    assert doc["kpis"]["rootlessMemberAccountsPercent"] == 37.5  # 3 of 8 member accounts (the hub is one)


def test_the_pack_rule_is_advisory_and_silent_when_whole(run: mockrun.Run) -> None:
    found = policy.check_resources(policy.from_registered(run.resources))
    assert [v for v in found if v.policy == policy.ROOT_PREVENTION] == []
    rule = next(r for r in policy.RULES if r.name == policy.ROOT_PREVENTION)
    assert rule.level == policy.ADVISORY
    # An SCP edited out of equivalence, and one feature dropped, are reported (advisory).
    items = policy.from_registered(run.resources)
    edited = []
    for r in items:
        if r.type == ev.POLICY_TYPE:
            doc = json.loads(r.props["content"])
            doc["Statement"][0]["Action"] = "s3:*"
            r = type(r)(**{**r.__dict__, "props": {**r.props, "content": json.dumps(doc)}})
        if r.type == ev.ORG_FEATURES_TYPE:
            r = type(r)(**{**r.__dict__, "props": {**r.props, "enabledFeatures": ["RootCredentialsManagement"]}})
        edited.append(r)
    found = [v for v in policy.check_resources(edited) if v.policy == policy.ROOT_PREVENTION]
    assert {v.enforcement_level for v in found} == {"advisory"}
    assert any("lacks RootSessions" in v.message for v in found)
    assert any("SCP rootwatch-deny-root: allows" in v.message for v in found)


def test_plan_shows_the_posture_column_and_the_organization(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "prevention"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("ACCOUNT"))
    assert header.split()[-1] == "POSTURE"
    row = next(line for line in out.splitlines() if line.startswith("222222222203"))
    assert row.endswith("root:present scp:yes")
    assert next(line for line in out.splitlines() if line.startswith(MGMT)).endswith("root:unknown scp:n/a")
    assert "rootwatch-deny-root: equivalent to Control Tower AWS-GR_RESTRICT_ROOT_USER" in out
    assert "+ aws:iam/organizationsFeatures:OrganizationsFeatures  rootwatch-prevention-root-access" in out
    assert "+ aws:organizations/policyAttachment:PolicyAttachment  rootwatch-prevention-deny-root-r-ex01" in out
    assert main(["plan", "--stack", "prevention", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, json.loads((ROOT / "docs" / "plan.schema.json").read_text()))
    types = {r["type"] for r in report["organization"]["resources"]}
    assert {ev.ORG_FEATURES_TYPE, ev.POLICY_TYPE, ev.POLICY_ATTACHMENT_TYPE} <= types
    assert report["organization"]["rootlessMemberAccountsPercent"] == 37.5


def test_a_missing_posture_file_is_one_line(tmp_path: Path) -> None:
    extra = {"rootwatch:prevention": json.dumps({"centralRootAccess": {"enabled": True},
                                                 "postureFile": str(tmp_path / "nope.json")})}
    result = mockrun.run("example", extra_config=extra, check=False)
    assert str(result.error) == f"rootwatch:prevention.postureFile: {tmp_path / 'nope.json'}: no such file"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"accounts": [{"id": "222222222201", "rootCredentials": "maybe"}]}))
    extra["rootwatch:prevention"] = json.dumps({"centralRootAccess": {"enabled": True}, "postureFile": str(bad)})
    result = mockrun.run("example", extra_config=extra, check=False)
    assert "accounts[0] needs an id and rootCredentials none|present|unknown" in str(result.error)
