"""`rootwatch policy check FILE`: the pack's rules over `pulumi stack export` files, offline.

tests/data/stack-exports/ holds hand-written exports of a stack rootwatch did
not make ("org-security": a member account through an explicit provider, the
management account through the default provider), a weakened copy, and two
unreadable files. rootwatch's own example stack is exported from a mock run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from rootwatch import compliance
from rootwatch.commands import cli
from rootwatch.program import mockrun

EXPORTS = Path(__file__).resolve().parent / "data" / "stack-exports"
CLEAN = EXPORTS / "org-security-clean.json"
WEAKENED = EXPORTS / "org-security-weakened.json"
URN = "urn:pulumi:prod::org-security::"


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["policy", "check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_clean_foreign_stack_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, str(CLEAN))
    assert code == 0, out
    assert "22 resources, 2 account(s)" in out
    assert "Accounts: 2 of 2 compliant (policy compliance score 100.0%)" in out
    # Compliant, yet each account could empty its own trail bucket: reported, not failed.
    assert out.count("[advisory] rootwatch-immutable-logs: account ") == 2
    assert "is versioned only: the account's root user or an admin can delete every version" in out
    assert "ok: 0 mandatory, 2 advisory violation(s)" in out


def test_weaknesses_are_reported_with_urn_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, str(WEAKENED))
    assert code == 1
    expected = [
        ("[mandatory] rootwatch-trail: the trail is single-region", "aws:cloudtrail/trail:Trail::member-trail"),
        ("[mandatory] rootwatch-alert-topic: topic 'org-root-alerts' is encrypted with the AWS-managed key alias/aws/sns",
         "aws:sns/topic:Topic::mgmt-alerts"),
        ("account 111122223333: metricFilter: filter 'RootAccountUsage' has the CIS pattern but is on log group "
         "'application-logs', not on the trail's log group 'aws-cloudtrail-logs'",
         "aws:cloudwatch/logMetricFilter:LogMetricFilter::mgmt-root-usage"),
        ("account 111122223333: topic: topic 'org-root-alerts' has no subscription", "aws:sns/topic:Topic::mgmt-alerts"),
        ("account 444455556666: alarm: alarm 'cis-root-usage' period is 86400 s; at most 300 s",
         "aws:cloudwatch/metricAlarm:MetricAlarm::member-root-alarm"),
    ]
    for message, urn in expected:
        line = out.index(message)
        assert out[line:].splitlines()[1].strip() == URN + urn
    assert "has its actions disabled (actionsEnabled: false)" in out
    assert "111122223333  NONCOMPLIANT: metricFilter, topic" in out
    assert "444455556666  NONCOMPLIANT: trail, alarm" in out
    assert out.rstrip().endswith("FAIL: 6 mandatory, 2 advisory violation(s)")


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, str(WEAKENED), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["schema"] == "rootwatch.policycheck/v1" and report["resources"] == 21
    assert report["summary"] == {"mandatory": 6, "advisory": 2}  # the 2: rootwatch-immutable-logs
    v = report["violations"][0]
    assert set(v) == {"policy", "urn", "message", "enforcementLevel", "account"}
    assert v["urn"].startswith(URN)
    evidence = report["compliance"]
    assert evidence["schema"] == compliance.SCHEMA
    assert evidence["kpis"]["policyComplianceScore"] == 0.0
    assert evidence["accounts"]["444455556666"]["checks"]["trail"]["status"] == "fail"


def test_config_can_downgrade_to_advisory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"all": "advisory"}))
    code, out, _ = check(capsys, str(WEAKENED), "--config", str(config))
    assert code == 0
    assert "[advisory] rootwatch-trail" in out and "ok: 0 mandatory, 8 advisory violation(s)" in out


def test_config_thresholds_apply(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"rootwatch-complete-chain": {"requiredRegions": ["us-east-1"]}}))
    code, out, _ = check(capsys, str(CLEAN), "--config", str(config))
    # The management account has a rule in us-east-1; the member account has none.
    assert code == 1
    assert "account 444455556666: realtime: no EventBridge root-activity rule in us-east-1" in out
    assert "111122223333  compliant" in out


def _export_of(run: mockrun.Run) -> dict[str, Any]:
    """The example stack as `pulumi stack export` would show it (inputs as outputs, a default provider)."""
    default = f"urn:pulumi:{run.stack}::rootwatch::pulumi:providers:aws::default_7_51_1"
    resources: list[dict[str, Any]] = [
        {"urn": default, "custom": True, "id": "d3f4u17", "type": "pulumi:providers:aws",
         "inputs": {"region": "us-east-1"}, "outputs": {"region": "us-east-1"}},
    ]
    for r in run.resources:
        props = json.loads(json.dumps(r.inputs, default=str))
        entry = {"urn": r.urn, "custom": r.custom, "type": r.type, "inputs": props, "outputs": props,
                 "parent": r.parent, "dependencies": r.dependencies}
        if r.custom and r.type != "pulumi:providers:aws":
            entry["provider"] = r.provider or f"{default}::d3f4u17"
        resources.append(entry)
    if not any(e.get("provider", "").startswith(default) for e in resources):
        resources.pop(0)  # the engine keeps no default provider that nothing uses (every account is pinned)
    return {"version": 3, "deployment": {"manifest": {"version": "v3.272.0"}, "resources": resources}}


def test_rootwatchs_own_stack_passes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    export = tmp_path / "example.json"
    export.write_text(json.dumps(_export_of(mockrun.run("example"))))
    code, out, _ = check(capsys, str(export))
    assert code == 0, out
    assert "Accounts: 9 of 9 compliant (policy compliance score 100.0%)" in out


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CLEAN.read_text()))
    code, out, _ = check(capsys, "-")
    assert code == 0 and out.startswith("<stdin>: 22 resources")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.json", "truncated.json: stack export is not valid JSON (line "),
        ("not-an-export.json", "not-an-export.json: no 'deployment' object; is this `pulumi stack export` output?"),
        ("missing.json", "missing.json: cannot read stack export (No such file or directory)"),
    ],
)
def test_unreadable_exports_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], name: str, message: str) -> None:
    code, out, err = check(capsys, str(EXPORTS / name))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rootwatch: error: ") and message in err
    assert "Traceback" not in err


def test_a_resource_without_urn_is_malformed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 3, "deployment": {"resources": [{"type": "aws:sns/topic:Topic"}]}}))
    code, _, err = check(capsys, str(bad))
    assert code == 2 and "bad.json: deployment.resources[0]: needs a string 'urn' and 'type'" in err


def test_a_bad_config_file_exits_2_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"rootwatch-alarm": {"maxAlarmPeriodSeconds": "5m"}}))
    code, _, err = check(capsys, str(CLEAN), "--config", str(config))
    assert code == 2
    assert "cfg.json: policy config: maxAlarmPeriodSeconds must be a positive integer, not '5m'" in err


def test_an_empty_stack_is_clean(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": None}}))
    code, out, _ = check(capsys, str(empty))
    assert code == 0 and "0 resources, 0 account(s)" in out
