"""Safe on a real organization (issue 12): each test here fails on the old behaviour.

Discovery refuses instead of deploying nothing or offboarding accounts, every account
(the management one too) is pinned to its own provider, trails are KMS-encrypted with
an access-logged bucket, and destroy keeps what protects the retained bucket.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from rootwatch.program import mockrun, realtime, trailsecurity
from tests.test_program import HUB, IN_SCOPE, MGMT

MEMBER = "222222222201"


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return mockrun.run("example")


def named(run: mockrun.Run, name: str) -> mockrun.Registered:
    (r,) = [x for x in run.resources if x.name == name]
    return r


# --- 1. discovery never returns "no accounts" quietly ---------------------------------------


def refused(**kw: Any) -> str:
    r = mockrun.run("example", check=False, **kw)
    assert isinstance(r.error, pulumi.RunError), r.error
    # Nothing is deployed when discovery refuses.
    assert not [x for x in r.resources if x.custom], [x.name for x in r.resources][:5]
    message = str(r.error)
    assert "\n" not in message
    return message


def test_a_caller_that_is_neither_management_nor_delegated_admin_is_refused_by_account() -> None:
    # The data source returns empty accounts/roots, no error: the old program deployed nothing.
    msg = refused(caller_account="222222222203")
    assert "caller account 222222222203" in msg and "management account (111111111111)" in msg


def test_a_registered_delegated_administrator_may_discover() -> None:
    r = mockrun.run("example", caller_account="222222222210", delegated_admins=("222222222210",))
    assert {m.name for m in r.by_type(mockrun.MONITOR_TYPE)} == {f"rootwatch-{a}" for a in IN_SCOPE}


def test_an_organization_with_no_accounts_is_refused() -> None:
    from rootwatch.core.errors import RootwatchError
    from rootwatch.program import organization

    with pytest.raises(RootwatchError, match="returned no accounts to caller account 111111111111"):
        organization.check_caller(MGMT, MGMT, [], lambda: set())


def previous(ids: set[str], **accounts: Any) -> dict[str, str]:
    base = {"source": "organization", "includeOus": ["ou-ex01-prod0001", "ou-ex01-stag0001", "ou-ex01-sand0001"],
            "includeAccounts": [MGMT, HUB], "previouslyManaged": sorted(ids), **accounts}
    return {"rootwatch:accounts": json.dumps(base)}


def test_dropping_more_than_the_allowed_share_of_managed_accounts_is_refused() -> None:
    # A stack that managed 4 more accounts than discovery finds now (a bad OU id, lost permissions).
    gone = {"222222222290", "222222222291", "222222222292", "222222222293"}
    msg = refused(extra_config=previous(IN_SCOPE | gone))
    assert "remove 4 of the 13 accounts this stack manages" in msg and "maxRemovedFraction 0.1" in msg
    assert "222222222290" in msg


def test_a_small_removal_or_an_explicit_allowance_passes() -> None:
    one = mockrun.run("example", extra_config=previous(IN_SCOPE | {"222222222290"}, maxRemovedFraction=0.2))
    assert len(one.by_type(mockrun.MONITOR_TYPE)) == len(IN_SCOPE)
    allowed = mockrun.run("example", extra_config=previous(IN_SCOPE | {f"2222222223{i:02d}" for i in range(20)},
                                                            allowMassRemoval=True))
    assert len(allowed.by_type(mockrun.MONITOR_TYPE)) == len(IN_SCOPE)


# --- 2. the management account's pinned provider ---------------------------------------------


def test_the_management_account_is_pinned_and_assumes_no_role(run: mockrun.Run) -> None:
    p = named(run, f"account-{MGMT}")
    assert json.loads(p.inputs["allowedAccountIds"]) == [MGMT]
    assert not p.inputs.get("assumeRoles")
    assert json.loads(p.inputs["defaultTags"])["tags"]["rootwatch:managed"] == "true"
    assert named(run, f"rootwatch-{MGMT}-trail").provider.startswith(p.urn)


def test_a_listed_management_account_is_deployed_through_its_provider_without_a_role() -> None:
    cfg = {"rootwatch:accounts": json.dumps({"source": "list", "list": [
        {"id": MGMT, "name": "management"}, {"id": MEMBER, "name": "member"},
        {"id": HUB, "name": "security-tooling"}]})}
    r = mockrun.run("example", extra_config=cfg)
    providers = {p.name: p.inputs for p in r.by_type("pulumi:providers:aws")}
    assert not providers[f"account-{MGMT}"].get("assumeRoles")  # never a role assumed into itself
    assert json.loads(providers[f"account-{MEMBER}"]["assumeRoles"])[0]["roleArn"].endswith(f"{MEMBER}:role/OrganizationAccountAccessRole")


# --- 4. CIS-clean trails ---------------------------------------------------------------------------


def test_every_trail_is_encrypted_with_its_accounts_rotating_key(run: mockrun.Run) -> None:
    for acct in IN_SCOPE:
        key = named(run, f"rootwatch-{acct}-trail-key")
        assert key.inputs["enableKeyRotation"] is True and key.retain_on_delete
        key_arn = f"arn:aws:kms:us-east-1:{acct}:key/mock-key-{key.name}"
        assert named(run, f"rootwatch-{acct}-trail").inputs["kmsKeyId"] == key_arn
        # The same key encrypts both log groups.
        assert named(run, f"rootwatch-{acct}-log-group").inputs["kmsKeyId"] == key_arn
        assert named(run, f"rootwatch-{acct}-trail-key-alias").inputs["name"] == "alias/rootwatch-trail"
    # The hub's formatter logs (alert text) are encrypted with the hub's own rotating key.
    hub_key = named(run, "rootwatch-hub-key")
    assert hub_key.inputs["enableKeyRotation"] is True
    assert named(run, "rootwatch-hub-formatter-logs").inputs["kmsKeyId"] == \
        f"arn:aws:kms:us-east-1:{HUB}:key/mock-key-rootwatch-hub-key"
    (logs,) = [st for st in json.loads(hub_key.inputs["policy"])["Statement"] if st["Principal"].get("Service")
               == "logs.us-east-1.amazonaws.com"]
    assert logs["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
        f"arn:aws:logs:us-east-1:{HUB}:log-group:/aws/lambda/rootwatch-alert-formatter"]}}


def test_the_trail_key_policy_is_what_cloudtrail_and_cloudwatch_logs_need(run: mockrun.Run) -> None:
    doc = json.loads(named(run, f"rootwatch-{MEMBER}-trail-key").inputs["policy"])
    st = {s["Sid"]: s for s in doc["Statement"]}
    trail = f"arn:aws:cloudtrail:us-east-1:{MEMBER}:trail/rootwatch"
    enc = st["AllowCloudTrailEncryptLogs"]
    assert enc["Principal"] == {"Service": "cloudtrail.amazonaws.com"} and enc["Action"] == "kms:GenerateDataKey*"
    assert enc["Condition"] == {"StringEquals": {"aws:SourceArn": trail}, "StringLike": {
        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{MEMBER}:trail/*"}}
    assert st["AllowCloudTrailDescribeKey"]["Action"] == "kms:DescribeKey"
    logs = st["AllowCloudWatchLogsEncryptLogGroups"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
        f"arn:aws:logs:us-east-1:{MEMBER}:log-group:/rootwatch/cloudtrail",
        realtime.formatter_log_group_arn(MEMBER, "us-east-1")]}}
    assert st["EnableAccountIamPolicies"]["Principal"] == {"AWS": f"arn:aws:iam::{MEMBER}:root"}
    # Nothing granted to a "*" principal.
    assert all(s["Principal"] != "*" and s["Principal"] != {"AWS": "*"} for s in doc["Statement"])


def test_the_trail_bucket_logs_access_into_a_retained_private_log_bucket(run: mockrun.Run) -> None:
    for acct in IN_SCOPE:
        by_urn = {r.urn: r for r in run.resources}
        logging = named(run, f"rootwatch-{acct}-trail-bucket-logging")
        assert logging.inputs["bucket"] == f"rootwatch-trail-{acct}-us-east-1"
        assert logging.inputs["targetBucket"] == f"rootwatch-access-logs-{acct}-us-east-1"
        assert logging.inputs["targetPrefix"] == "access-logs/"
        assert {by_urn[d].name for d in logging.dependencies} >= {f"rootwatch-{acct}-access-log-bucket-policy"}
        assert named(run, f"rootwatch-{acct}-access-log-bucket").retain_on_delete
        prefix = f"rootwatch-{acct}-access-log-bucket-"
        versioning = named(run, prefix + "versioning")
        assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
        pab = named(run, prefix + "public-access").inputs
        assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        enc = named(run, prefix + "encryption").inputs
        # Server access logs are delivered only into SSE-S3 buckets.
        assert enc["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        assert all(named(run, prefix + s).retain_on_delete for s in ("versioning", "public-access", "encryption",
                                                                     "ownership", "policy"))
    doc = json.loads(named(run, f"rootwatch-{MEMBER}-access-log-bucket-policy").inputs["policy"])
    st = {s["Sid"]: s for s in doc["Statement"]}
    put = st["S3ServerAccessLogsPolicy"]
    assert put["Principal"] == {"Service": "logging.s3.amazonaws.com"} and put["Action"] == "s3:PutObject"
    assert put["Resource"] == f"arn:aws:s3:::rootwatch-access-logs-{MEMBER}-us-east-1/access-logs/*"
    assert put["Condition"] == {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::rootwatch-trail-{MEMBER}-us-east-1"},
                                "StringEquals": {"aws:SourceAccount": MEMBER}}


def test_the_delivery_roles_trust_is_conditioned_on_this_trail(run: mockrun.Run) -> None:
    for acct in IN_SCOPE:
        (st,) = json.loads(named(run, f"rootwatch-{acct}-trail-role").inputs["assumeRolePolicy"])["Statement"]
        assert st["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": acct},
                                   "ArnLike": {"aws:SourceArn": f"arn:aws:cloudtrail:us-east-1:{acct}:trail/rootwatch"}}


def test_a_configured_key_template_is_used_per_account_and_no_key_is_created() -> None:
    cfg = {"rootwatch:trail": json.dumps({"kmsKeyArn": "arn:aws:kms:us-east-1:{accountId}:key/abcd-1234"})}
    r = mockrun.run("example", extra_config=cfg)
    assert not [k for k in r.by_type("aws:kms/key:Key") if k.name.endswith("-trail-key")]
    for acct in IN_SCOPE:
        assert named(r, f"rootwatch-{acct}-trail").inputs["kmsKeyId"] == f"arn:aws:kms:us-east-1:{acct}:key/abcd-1234"
        assert named(r, f"rootwatch-{acct}-log-group").inputs["kmsKeyId"] == f"arn:aws:kms:us-east-1:{acct}:key/abcd-1234"


def test_a_pure_access_log_policy_names_its_source_bucket() -> None:
    doc = trailsecurity.access_log_bucket_policy("logs", "src", "123456789012", "cn-north-1")
    assert doc["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws-cn:s3:::src"
    assert trailsecurity.logs_principal("cn-north-1") == "logs.cn-north-1.amazonaws.com.cn"


# --- 5. destroy keeps the protections of what it keeps -------------------------------------------


def test_every_satellite_of_the_retained_trail_bucket_is_retained(run: mockrun.Run) -> None:
    for acct in IN_SCOPE:
        assert named(run, f"rootwatch-{acct}-trail-bucket").retain_on_delete
        for suffix in ("versioning", "public-access", "policy", "encryption", "lifecycle", "ownership", "logging"):
            r = named(run, f"rootwatch-{acct}-trail-bucket-{suffix}")
            assert r.retain_on_delete, r.name  # deleting BucketVersioning would suspend versioning


# --- 8. the formatter depends on its log group ------------------------------------------------------


def test_the_formatter_function_waits_for_its_log_group(run: mockrun.Run) -> None:
    # The one formatter is the hub's; members run none.
    (fn,) = run.by_type("aws:lambda/function:Function")
    assert fn.name == "rootwatch-hub-formatter"
    assert named(run, "rootwatch-hub-formatter-logs").urn in fn.dependencies


# --- 9. shards stay under ~1,500 resources --------------------------------------------------------------


def test_the_default_shard_stays_under_1500_resources(run: mockrun.Run) -> None:
    from rootwatch.program.settings import RootwatchSettings

    per_account = max(len(v) for k, v in run.by_account().items() if k in IN_SCOPE)
    assert RootwatchSettings.model_fields["shard_max_accounts"].default * per_account <= 1500, per_account


def test_a_caller_that_sees_accounts_but_is_not_a_delegated_admin_is_refused() -> None:
    from rootwatch.core.errors import RootwatchError
    from rootwatch.program import organization
    from rootwatch.program.organization import Account

    with pytest.raises(RootwatchError, match="caller account 222222222203 is neither the management account"):
        organization.check_caller("222222222203", MGMT, [Account(MEMBER, "m")], lambda: {"222222222210"})
    organization.check_caller("222222222210", MGMT, [Account(MEMBER, "m")], lambda: {"222222222210"})


# --- 4. the compliance evaluation checks what Prowler checks ---------------------------------------


@pytest.fixture(scope="module")
def inputs(run: mockrun.Run) -> list[Any]:
    from rootwatch.compliance import policy

    return policy.from_registered(run.resources)


def _edit(items: list[Any], name: str, edit: Any) -> list[Any]:
    import dataclasses

    from rootwatch import compliance

    out = []
    for r in items:
        if r.name == name:
            props = json.loads(json.dumps(compliance.normalize(dict(r.props))))
            edit(props)
            r = dataclasses.replace(r, props=props)
        out.append(r)
    return out


def _verdict(items: list[Any]) -> Any:
    from rootwatch import compliance

    return compliance.evaluate(items)[MEMBER]


def test_the_example_passes_the_hardening_and_trail_checks(run: mockrun.Run) -> None:
    for acct in IN_SCOPE:
        checks = run.outputs["compliance"]["accounts"][acct]["checks"]
        assert checks["trail"]["ok"] and checks["hardening"]["status"] == "pass", (acct, checks["hardening"])


def test_an_unencrypted_trail_fails(inputs: list[Any]) -> None:
    v = _verdict(_edit(inputs, f"rootwatch-{MEMBER}-trail", lambda p: p.pop("kmsKeyId")))
    assert v.checks["trail"].status == "fail" and "CloudTrail.2" in v.checks["trail"].reason


def test_a_trail_bucket_without_access_logging_fails(inputs: list[Any]) -> None:
    items = [r for r in inputs if r.name != f"rootwatch-{MEMBER}-trail-bucket-logging"]
    v = _verdict(items)
    assert v.checks["trail"].status == "fail" and "does not log access" in v.checks["trail"].reason


def test_a_trail_key_without_rotation_fails(inputs: list[Any]) -> None:
    v = _verdict(_edit(inputs, f"rootwatch-{MEMBER}-trail-key", lambda p: p.update(enableKeyRotation=False)))
    assert "does not rotate" in v.checks["trail"].reason and v.checks["hardening"].status == "fail"


@pytest.mark.parametrize(("name", "account"), [(f"rootwatch-{MEMBER}-topic-critical-policy", MEMBER),
                                               (f"rootwatch-{MEMBER}-alerts-key", MEMBER),
                                               ("rootwatch-hub-events-dlq", HUB), ("rootwatch-hub-intake", HUB),
                                               ("rootwatch-hub-topic-critical-policy", HUB),
                                               ("rootwatch-hub-route-queue-policy-0", HUB)])
def test_a_public_topic_key_or_queue_policy_fails(inputs: list[Any], name: str, account: str) -> None:
    # The hub's queues and topics are judged with the hub account, which hosts them.
    def open_up(p: dict[str, Any]) -> None:
        doc = json.loads(p["policy"])
        doc["Statement"].append({"Sid": "Everyone", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})
        p["policy"] = json.dumps(doc)

    from rootwatch import compliance

    assert compliance.evaluate(inputs)[account].checks["hardening"].status == "pass"
    v = compliance.evaluate(_edit(inputs, name, open_up))[account]
    assert v.checks["hardening"].status == "fail" and "Everyone" in v.checks["hardening"].reason


def test_a_star_principal_limited_to_a_source_is_not_public() -> None:
    from rootwatch.compliance.rules import public_statements

    doc = {"Statement": [{"Sid": "A", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sns:Publish",
                          "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}},
                         {"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "*"}]}
    assert public_statements(json.dumps(doc)) == []


# --- 8. the project installs its own dependencies ---------------------------------------------------------


def test_pulumi_install_finds_the_programs_dependencies() -> None:
    import tomllib

    import yaml

    project = yaml.safe_load((mockrun.PROJECT_DIR / "Pulumi.yaml").read_text())
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    lines = [ln.strip() for ln in (mockrun.PROJECT_DIR / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    pyproject = tomllib.loads((mockrun.PROJECT_DIR / "pyproject.toml").read_text())
    assert sorted(lines) == sorted(pyproject["project"]["dependencies"])


def test_the_example_stack_file_has_no_undecryptable_ciphertext() -> None:
    # `secure:` without encryptionsalt/secretsprovider cannot be decrypted: `pulumi preview` of the example failed.
    import yaml

    text = (mockrun.PROJECT_DIR / "stacks" / "Pulumi.example.yaml").read_text()
    doc = yaml.safe_load(text)
    assert "secure:" not in text.replace("--secret", "") and not {"encryptionsalt", "secretsprovider"} & set(doc)
    endpoint = json.loads(json.dumps(doc["config"]["rootwatch:routes"]["critical"][0]))["endpoint"]
    # PagerDuty's CloudWatch integration URL confirms SNS subscriptions; the Events API v2 URL does not.
    assert endpoint.startswith("https://events.pagerduty.com/integration/") and endpoint.endswith("/enqueue")
    assert "Events API v2 URL (/v2/enqueue) does not" in text


# --- 3. trail.mode existing works or refuses -----------------------------------------------------------------

EXPLICIT = ("333333333301", "333333333302")
EXPLICIT_HUB = "333333333310"  # the explicit stack's hub, monitored like its members


def test_an_existing_log_group_is_looked_up_in_each_account_and_used() -> None:
    groups = {a: ("/org/cloudtrail/account-trail", "other") for a in (*EXPLICIT, EXPLICIT_HUB)}
    r = mockrun.run("explicit", log_groups=groups)
    filters = r.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert sorted(f.inputs["logGroupName"] for f in filters) == ["/org/cloudtrail/account-trail"] * 3
    assert r.invokes.count("aws:cloudwatch/getLogGroups:getLogGroups") == 3


def test_a_missing_existing_log_group_is_refused_naming_account_and_group() -> None:
    # Control Tower's group exists in the management account only, not in the members.
    groups = {EXPLICIT[0]: ("/org/cloudtrail/account-trail",), EXPLICIT[1]: ("aws-controltower/CloudTrailLogs",)}
    r = mockrun.run("explicit", check=False, log_groups=groups)
    assert isinstance(r.error, pulumi.RunError)
    msg = str(r.error)
    assert f"account {EXPLICIT[1]}" in msg and "'/org/cloudtrail/account-trail' does not exist in eu-west-1" in msg
    assert "\n" not in msg


def test_control_tower_4_groups_are_found_by_prefix() -> None:
    cfg = {"rootwatch:trail": json.dumps({"mode": "existing", "logGroupPrefix": "aws-controltower/CloudTrailLogs"}),
           "rootwatch:accounts": json.dumps({"source": "list", "list": [{"id": MGMT, "name": "management"}]}),
           "rootwatch:hub": json.dumps({"accountId": MGMT})}  # the management account may be the hub
    r = mockrun.run("explicit", extra_config=cfg, log_groups={MGMT: ("aws-controltower/CloudTrailLogs-a1b2c3",)})
    (f,) = r.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert f.inputs["logGroupName"] == "aws-controltower/CloudTrailLogs-a1b2c3"
