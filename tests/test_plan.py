"""`rootwatch plan` and `rootwatch org snapshot`, end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from rootwatch.commands.cli import main
from rootwatch.core import snapshot
from rootwatch.program import mockrun

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "plan.schema.json").read_text())
EXAMPLE_STACK = (ROOT / "stacks" / "Pulumi.example.yaml").read_text()


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_plan_lists_every_account_with_severity_routes_and_resources(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Stack example: 9 accounts"
    header = next(line for line in lines if line.startswith("ACCOUNT"))
    assert header.split() == ["ACCOUNT", "NAME", "OU", "SEVERITY", "RESOURCES", "ROUTES", "COMPLIANT", "COST/MONTH",
                              "POSTURE"]
    row = next(line for line in lines if line.startswith("222222222201")).split()
    assert row[:4] == ["222222222201", "payments-prod", "payments", "critical"]
    assert "email:1" in row and "https:1" in row
    sandbox = next(line for line in lines if line.startswith("222222222206")).split()
    assert sandbox[3] == "low"
    assert any(line.startswith("Totals: 9 accounts") for line in lines)
    assert "222222222207  dev-sandbox-bob          account is SUSPENDED" in out


def test_json_plan_validates_against_the_documented_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, "--format", "json")
    assert code == 0
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    assert report["stack"] == "example"
    assert [a["id"] for a in report["accounts"]] == sorted(a["id"] for a in report["accounts"])
    assert report["totals"]["accounts"] == 9
    assert report["totals"]["resources"] == sum(len(a["resources"]) for a in report["accounts"])
    prod = next(a for a in report["accounts"] if a["id"] == "222222222201")
    types = {r["type"] for r in prod["resources"]}
    assert {"pulumi:providers:aws", "aws:cloudtrail/trail:Trail", "aws:cloudwatch/metricAlarm:MetricAlarm"} <= types
    assert prod["routes"] == {"critical": {"email": 1, "https": 1}}
    assert {s["id"] for s in report["skipped"]} == {"222222222207", "222222222209"}


def test_secrets_never_appear_in_any_output(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An external id from the environment and a secure route endpoint: neither may leak.
    monkeypatch.setenv("ROOTWATCH_ACCESS__EXTERNALID", "ext-id-do-not-print-42")
    for fmt in ("text", "json"):
        code, out, err = plan(capsys, "--format", fmt)
        assert code == 0
        for leaked in ("ext-id-do-not-print-42", "v1:cGFnZXJkdXR5", "[secret]", "security-oncall@example.com", "rootwatch-siem-intake"):
            assert leaked not in out and leaked not in err


def test_plan_against_another_snapshot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    org = json.loads((ROOT / "config" / "example-org.json").read_text())
    org["accounts"].append({"id": "222222222299", "name": "payments-dr", "state": "ACTIVE",
                            "ouPath": "r-ex01/ou-ex01-prod0001/ou-ex01-paym0001", "tags": {}})
    path = tmp_path / "org.json"
    path.write_text(json.dumps(org))
    code, out, _ = plan(capsys, "--org-snapshot", str(path), "--format", "json")
    assert code == 0
    ids = {a["id"] for a in json.loads(out)["accounts"]}
    assert "222222222299" in ids and len(ids) == 10


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "org snapshot file not found"),
        ("{not json", "not valid JSON (line 1"),
        ('{"managementAccountId": "1", "accounts": []}', "managementAccountId must be a 12-digit account id"),
        ('{"managementAccountId": "111111111111", "accounts": [{"id": "111111111111", "ouPath": "ou-x"}]}', "accounts[0].ouPath must list ids from the root"),
        ('{"managementAccountId": "111111111111", "accounts": [{"id": "111111111111", "ouPath": "r-ab12", "state": "GONE"}]}', "accounts[0].state must be one of"),
    ],
)
def test_bad_snapshots_are_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "org.json"
    if content is not None:
        path.write_text(content)
    code, out, err = plan(capsys, "--org-snapshot", str(path))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"rootwatch: error: {path}") and expected in err
    assert "Traceback" not in err


def test_bad_stack_config_is_one_line_and_registers_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.broken.yaml"
    stack.write_text(EXAMPLE_STACK.replace("periodSeconds: 60", "periodSeconds: 45").replace("retentionDays: 365", "retentionDays: 42"))
    code, out, err = plan(capsys, "--stack", str(stack))
    assert code == 2 and out == ""
    (err,) = [line for line in err.splitlines() if line.startswith("rootwatch: error: stack broken: invalid stack config")]
    assert "rootwatch:alarm.periodSeconds: must be a multiple of 60" in err
    assert "rootwatch:trail.retentionDays: 42 is not a retention" in err


def test_unknown_stack_and_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, "--stack", "nope")
    assert code == 2 and "Pulumi.nope.yaml: no such stack file (stacks: example, explicit" in err
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--format", "yaml"])
    assert exc.value.code == 2


def test_explicit_stack_plans_without_the_organization(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, "--stack", "explicit", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert [a["id"] for a in report["accounts"]] == ["333333333301", "333333333302", "333333333310"]
    assert all("aws:cloudtrail/trail:Trail" not in {r["type"] for r in a["resources"]} for a in report["accounts"])


def test_org_snapshot_from_a_live_organization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        o = boto3.client("organizations", region_name="us-east-1")
        o.create_organization(FeatureSet="ALL")
        root = o.list_roots()["Roots"][0]["Id"]
        prod = o.create_organizational_unit(ParentId=root, Name="production")["OrganizationalUnit"]["Id"]
        pay = o.create_organizational_unit(ParentId=prod, Name="payments")["OrganizationalUnit"]["Id"]
        acct = o.create_account(Email="p@example.com", AccountName="payments-prod", Tags=[{"Key": "tier", "Value": "1"}])
        acct_id = acct["CreateAccountStatus"]["AccountId"]
        o.move_account(AccountId=acct_id, SourceParentId=root, DestinationParentId=pay)
        out = tmp_path / "live.json"
        assert main(["org", "snapshot", "--out", str(out)]) == 0
    snap = snapshot.load(out)
    member = next(a for a in snap.accounts if a.id == acct_id)
    assert member.ou_path == (root, prod, pay) and member.tags == {"tier": "1"} and member.state == "ACTIVE"
    assert snap.ou_names[pay] == "payments"
    assert f"wrote {out}: 2 accounts" in capsys.readouterr().err
    # The written snapshot drives the program. The example stack's OU ids match nothing in
    # this organization: the program refuses it (naming the filters) and registers nothing;
    # `rootwatch init` writes a stack that plans it (tests/test_firstday.py).
    r = mockrun.run("example", org=snap, check=False)
    assert r.error is not None and "no account is in scope: accounts.includeOus [ou-ex01-prod0001" in str(r.error)
    assert [x for x in r.resources if x.custom] == []


def test_org_snapshot_without_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(["org", "snapshot", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rootwatch: error: no AWS credentials") and err.count("\n") == 1
