"""Logs the audited account cannot destroy (issue 19): the locked log archive, the in-account lock,
and how the compliance evaluation reports them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_hub import provider_account

from rootwatch.commands.cli import main
from rootwatch.compliance import evaluate, summarize
from rootwatch.compliance.model import PolicyInput
from rootwatch.core.errors import ConfigError
from rootwatch.program import archive, mockrun
from rootwatch.program import settings as rw_settings

ARCHIVE = "222222222208"  # security-tooling holds the example's log archive
LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"


@pytest.fixture(scope="module")
def example() -> mockrun.Run:
    return mockrun.run("example")


@pytest.fixture(scope="module")
def local() -> mockrun.Run:
    """The prevention stack: no trail.archive, so each trail bucket is locked in its own account."""
    return mockrun.run("prevention")


def named(run: mockrun.Run, name: str) -> mockrun.Registered:
    return next(r for r in run.resources if r.name == name)


# -- the archive, as planned ----------------------------------------------------------------------


def test_the_archive_bucket_is_locked_in_compliance_mode_in_the_archive_account(example: mockrun.Run) -> None:
    group = example.by_account()[mockrun.ARCHIVE_GROUP]
    assert {provider_account(example, r) for r in group} == {ARCHIVE}
    bucket = named(example, "rootwatch-archive-bucket")
    assert bucket.inputs["bucket"] == f"rootwatch-archive-{ARCHIVE}-us-east-1"
    assert bucket.inputs["objectLockEnabled"] is True and bucket.inputs["forceDestroy"] is False
    lock = named(example, "rootwatch-archive-bucket-lock")
    assert lock.inputs["rule"] == {"defaultRetention": {"mode": "COMPLIANCE", "days": 2557}}
    assert named(example, "rootwatch-archive-bucket-versioning").urn in lock.dependencies
    enc = named(example, "rootwatch-archive-bucket-encryption").inputs["rules"][0]
    assert enc["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms" and enc["bucketKeyEnabled"] is True
    assert named(example, "rootwatch-archive-key").inputs["enableKeyRotation"] is True
    assert named(example, "rootwatch-archive-key-alias").inputs["name"] == archive.KEY_ALIAS


def test_archive_policies_admit_only_the_organizations_replication_roles(example: mockrun.Run) -> None:
    bucket_doc = json.loads(named(example, "rootwatch-archive-bucket-policy").inputs["policy"])
    write, check, deny = bucket_doc["Statement"]
    b = f"arn:aws:s3:::rootwatch-archive-{ARCHIVE}-us-east-1"
    assert write["Action"] == ["s3:ReplicateObject", "s3:ReplicateTags"] and write["Resource"] == f"{b}/AWSLogs/*"
    assert "s3:ReplicateDelete" not in write["Action"]  # deletions never reach the archive
    assert write["Principal"] == "*" and write["Condition"]["ArnLike"] == {
        "aws:PrincipalArn": "arn:aws:iam::*:role/rootwatch-trail-replication"}
    assert write["Condition"]["StringEquals"]["aws:PrincipalOrgID"].startswith("o-")
    assert check["Condition"] == write["Condition"] and check["Resource"] == b
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    key_doc = json.loads(named(example, "rootwatch-archive-key").inputs["policy"])
    admin, use = key_doc["Statement"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ARCHIVE}:root"}
    assert use["Action"] == ["kms:Encrypt", "kms:GenerateDataKey"]  # no Decrypt: members cannot read the archive
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    # With S3 Bucket Keys (on in the archive) the context is the bucket's ARN, else the object's.
    assert use["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": [b, f"{b}/*"]}


def test_without_an_organization_id_the_policies_name_each_role() -> None:
    doc = archive.archive_bucket_policy(ARCHIVE, "us-east-1", None, ["222222222201", "222222222202"])
    assert doc["Statement"][0]["Principal"] == {"AWS": [
        "arn:aws:iam::222222222201:role/rootwatch-trail-replication",
        "arn:aws:iam::222222222202:role/rootwatch-trail-replication"]}
    assert "Condition" not in doc["Statement"][0]


def test_every_trail_bucket_replicates_into_the_archive_without_deletions(example: mockrun.Run) -> None:
    ready = {named(example, n).urn for n in ("rootwatch-archive-bucket-versioning", "rootwatch-archive-bucket-lock",
                                             "rootwatch-archive-bucket-policy", "rootwatch-archive-key")}
    accounts = set(example.outputs["accounts"])
    replications = example.by_type(REPLICATION)
    assert {provider_account(example, r) for r in replications} == accounts
    for rep in replications:
        acct = provider_account(example, rep)
        assert rep.inputs["bucket"] == f"rootwatch-trail-{acct}-us-east-1"
        [rule] = rep.inputs["rules"]
        assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": "AWSLogs/"}
        assert rule["deleteMarkerReplication"] == {"status": "Disabled"}
        assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
        assert rule["destination"] == {
            "bucket": f"arn:aws:s3:::rootwatch-archive-{ARCHIVE}-us-east-1", "account": ARCHIVE, "storageClass": "STANDARD",
            "encryptionConfiguration": {"replicaKmsKeyId": f"arn:aws:kms:us-east-1:{ARCHIVE}:alias/rootwatch-archive"}}
        # S3 checks the destination when the configuration is put: the archive first.
        assert ready <= set(rep.dependencies), acct
        assert named(example, f"rootwatch-{acct}-trail-bucket-versioning").urn in rep.dependencies
    assert example.by_type(LOCK) == [named(example, "rootwatch-archive-bucket-lock")]  # members: no own lock


def test_the_replication_role_reads_its_own_logs_and_writes_replicas_only(example: mockrun.Run) -> None:
    acct = "222222222201"
    role = named(example, f"rootwatch-{acct}-replication-role")
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": acct}}
    doc = json.loads(named(example, f"rootwatch-{acct}-replication-role-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    src = f"arn:aws:s3:::rootwatch-trail-{acct}-us-east-1"
    assert by_sid["ReadSourceVersions"]["Resource"] == f"{src}/*"
    assert by_sid["WriteReplicas"]["Resource"] == f"arn:aws:s3:::rootwatch-archive-{ARCHIVE}-us-east-1/AWSLogs/*"
    assert not any("Delete" in a for s in doc["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert by_sid["DecryptSource"]["Resource"].startswith(f"arn:aws:kms:us-east-1:{acct}:key/")
    # CloudTrail encrypts log files with the context aws:cloudtrail:arn (AWS's CloudTrail key policy decrypts on it).
    assert by_sid["DecryptSource"]["Condition"] == {"StringEquals": {
        "kms:ViaService": "s3.us-east-1.amazonaws.com",
        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:us-east-1:{acct}:trail/rootwatch"}}
    dest = f"arn:aws:s3:::rootwatch-archive-{ARCHIVE}-us-east-1"
    assert by_sid["EncryptReplicas"]["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": [dest, f"{dest}/*"]}


def test_without_an_archive_each_trail_bucket_is_locked_where_it_is(local: mockrun.Run) -> None:
    accounts = set(local.outputs["accounts"])
    locks = local.by_type(LOCK)
    assert {provider_account(local, r) for r in locks} == accounts and local.by_type(REPLICATION) == []
    for lock in locks:
        acct = provider_account(local, lock)
        assert lock.inputs["bucket"] == f"rootwatch-trail-{acct}-us-east-1"
        assert lock.inputs["rule"] == {"defaultRetention": {"mode": "COMPLIANCE", "days": 365}}
        # Object Lock needs versioning first; the bucket itself is not re-created (no objectLockEnabled on it).
        assert named(local, f"rootwatch-{acct}-trail-bucket-versioning").urn in lock.dependencies
        assert "objectLockEnabled" not in named(local, f"rootwatch-{acct}-trail-bucket").inputs


# -- settings ------------------------------------------------------------------------------------


def load(trail: dict[str, Any]) -> rw_settings.RootwatchSettings:
    base = mockrun.load_stack_config("example").values
    return rw_settings.load({**base, "rootwatch:trail": json.dumps(trail)})


@pytest.mark.parametrize(("trail", "words"), [
    ({"mode": "existing", "logGroupName": "g", "archive": {"accountId": ARCHIVE}},
     "trail.archive replicates rootwatch's own trail buckets: it needs mode 'managed', not 'existing'"),
    ({"lifecycle": {"glacierAfterDays": 30, "expireAfterDays": 90}},
     r"expireAfterDays \(90\) is shorter than the Object Lock retention \(trail.objectLockDays, 365 days\)"),
    ({"archive": {"accountId": ARCHIVE, "retentionDays": 0}}, "retentionDays"),
    ({"objectLockDays": -1}, "objectLockDays"),
])
def test_bad_immutability_settings_are_refused(trail: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load(trail)


def test_an_archive_does_not_bind_the_trail_buckets_lifecycle() -> None:
    # The members' buckets are not locked then; the archive keeps its copies for retentionDays.
    s = load({"lifecycle": {"glacierAfterDays": 30, "expireAfterDays": 90}, "archive": {"accountId": ARCHIVE}})
    assert s.trail.lock_days == 365 and s.trail.lifecycle.expire_after_days == 90


def test_locks_can_be_turned_off_and_an_archive_outside_the_stack_is_refused(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert load({"objectLockDays": 0}).trail.lock_days == 0
    monkeypatch.setenv("ROOTWATCH_TRAIL", json.dumps({"archive": {"accountId": "999999999999"}}))
    assert main(["plan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rootwatch: error: ") and "rootwatch:trail.archive.accountId: account 999999999999 is not " \
        "one of the stack's accounts or the hub" in err[-1]
    assert "Traceback" not in "\n".join(err)
    # Refused before anything is registered (not even the account providers).
    refused = mockrun.run("example", check=False,
                          extra_config={"rootwatch:trail": json.dumps({"archive": {"accountId": "999999999999"}})})
    assert refused.error and "999999999999" in str(refused.error) and not any(r.custom for r in refused.resources)


# -- the evaluation ----------------------------------------------------------------------------------


def test_the_compliance_output_reports_immutable_logs_per_account(example: mockrun.Run, local: mockrun.Run) -> None:
    for run, how in ((example, "replicates (no delete markers) to rootwatch-archive-"), (local, "is locked: S3 Object Lock")):
        doc = run.outputs["compliance"]
        assert doc["kpis"]["accountsWithImmutableLogs"] == len(run.outputs["accounts"])
        for acct, a in doc["accounts"].items():
            assert a["immutableLogs"]["ok"] is True and how in a["immutableLogs"]["reason"], acct
    # The plan shows the archive with its lock and the replications into it.
    plan = mockrun.run("example")
    assert plan.outputs["logArchive"] == {"accountId": ARCHIVE, "region": "us-east-1",
                                          "bucket": f"rootwatch-archive-{ARCHIVE}-us-east-1",
                                          "objectLock": {"mode": "COMPLIANCE", "days": 2557}}


PROVIDER = "urn:pulumi:s::p::pulumi:providers:aws::acct"


def stack(*extra: PolicyInput, lock_mode: str = "COMPLIANCE", trail_bucket: str = "logs-a") -> list[PolicyInput]:
    provider = PolicyInput("pulumi:providers:aws", PROVIDER, {"allowedAccountIds": json.dumps(["111111111111"]),
                                                               "region": "us-east-1"}, name="acct")
    trail = PolicyInput("aws:cloudtrail/trail:Trail", "urn:t", {"name": "t", "s3BucketName": trail_bucket},
                        provider=PROVIDER + "::id", name="t")
    return [provider, trail, *extra]


def lock_on(bucket: str, mode: str = "COMPLIANCE", days: int = 30) -> PolicyInput:
    return PolicyInput(LOCK, f"urn:lock:{bucket}", {"bucket": bucket, "rule": {"defaultRetention": {"mode": mode, "days": days}}},
                       provider=PROVIDER + "::id", name=f"lock-{bucket}")


def replication(dest: str, markers: str = "Disabled") -> PolicyInput:
    return PolicyInput(REPLICATION, "urn:rep", {"bucket": "logs-a", "rules": [
        {"status": "Enabled", "deleteMarkerReplication": {"status": markers}, "destination": {"bucket": f"arn:aws:s3:::{dest}"}}]},
        provider=PROVIDER + "::id", name="rep")


def bucket(name: str) -> PolicyInput:
    return PolicyInput("aws:s3/bucket:Bucket", f"urn:b:{name}", {"bucket": name}, provider=PROVIDER + "::id", name=name)


@pytest.mark.parametrize(("extra", "status", "words"), [
    ((lock_on("logs-a"),), "pass", "is locked: S3 Object Lock COMPLIANCE, 30 days"),
    ((lock_on("logs-a", "GOVERNANCE"),), "fail", "GOVERNANCE can be bypassed"),
    ((), "fail", "is versioned only"),
    ((replication("vault"), bucket("vault"), lock_on("vault")), "pass", "replicates (no delete markers) to vault"),
    ((replication("vault", "Enabled"), bucket("vault"), lock_on("vault")), "fail", "copies delete markers"),
    ((replication("vault"), bucket("vault")), "fail", "it has no Object Lock"),
    ((replication("elsewhere"),), "unverified", "outside this stack"),
])
def test_what_counts_as_immutable(extra: tuple[PolicyInput, ...], status: str, words: str) -> None:
    [verdict] = evaluate(stack(*extra)).values()
    assert verdict.immutable_logs is not None
    assert verdict.immutable_logs.status == status and words in verdict.immutable_logs.reason
    # Reported beside the checks: it never changes "compliant".
    assert verdict.compliant == evaluate(stack()).popitem()[1].compliant
    doc = summarize({verdict.account_id: verdict})
    assert doc["kpis"]["accountsWithImmutableLogs"] == (1 if status == "pass" else 0)


# -- on moto: the lock the program declares refuses deletion -------------------------------------------


def _s3_lock(inputs: dict[str, Any]) -> dict[str, Any]:
    """The registered BucketObjectLockConfiguration inputs, as S3's PutObjectLockConfiguration takes them."""
    retention = inputs["rule"]["defaultRetention"]
    return {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": retention["mode"],
                                                                          "Days": int(retention["days"])}}}


@pytest.mark.parametrize(("stack", "lock_name"), [("example", "rootwatch-archive-bucket-lock"),
                                                  ("prevention", "rootwatch-222222222201-trail-bucket-lock")])
def test_a_locked_log_file_cannot_be_deleted_even_by_its_account(stack: str, lock_name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    lock = named(mockrun.run(stack), lock_name)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=lock.inputs["bucket"])
        # An existing, versioned bucket: Object Lock is turned on by the configuration alone.
        s3.put_bucket_versioning(Bucket=lock.inputs["bucket"], VersioningConfiguration={"Status": "Enabled"})
        s3.put_object_lock_configuration(Bucket=lock.inputs["bucket"], ObjectLockConfiguration=_s3_lock(lock.inputs))
        key = "AWSLogs/222222222201/CloudTrail/us-east-1/2026/12/03/x.json.gz"
        version = s3.put_object(Bucket=lock.inputs["bucket"], Key=key, Body=b"{}")["VersionId"]
        assert s3.head_object(Bucket=lock.inputs["bucket"], Key=key)["ObjectLockMode"] == "COMPLIANCE"
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=lock.inputs["bucket"], Key=key, VersionId=version)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        # Governance-bypass does not apply to COMPLIANCE mode.
        with pytest.raises(ClientError):
            s3.delete_object(Bucket=lock.inputs["bucket"], Key=key, VersionId=version, BypassGovernanceRetention=True)
        assert [v["VersionId"] for v in s3.list_object_versions(Bucket=lock.inputs["bucket"])["Versions"]] == [version]
