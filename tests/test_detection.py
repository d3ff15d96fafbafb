"""The detection rule: one definition, its renderings, and the classifier, on the corpus."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from rootwatch.core.severity import Severity
from rootwatch.detection import rule as detection
from rootwatch.detection.eventpattern import matches as eb_matches
from rootwatch.detection.filterpattern import MAX_PATTERN_LENGTH, compile_pattern
from rootwatch.detection.rule import (
    CIS_PATTERN,
    DEFAULT_CLASS_SEVERITY,
    EXTENDED_PATTERN,
    EventClass,
    Finding,
    classify,
    eventbridge_patterns,
    wrap_eventbridge,
)

CORPUS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "cloudtrail_corpus.json").read_text())["cases"]
IDS = [c["name"] for c in CORPUS]

# Security Hub CloudWatch.1 remediation text, typed out here independently.
VERBATIM_CIS = '{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType !="AwsServiceEvent"}'
EXPECTED_EXTENDED = (
    '{$.userIdentity.type="Root" && ($.userIdentity.invokedBy NOT EXISTS'
    ' || $.userIdentity.invokedBy="signin.amazonaws.com") && ($.eventType !="AwsServiceEvent" || $.eventType NOT EXISTS)}'
)

match_cis = compile_pattern(CIS_PATTERN)
match_extended = compile_pattern(EXTENDED_PATTERN)


def eventbridge_detects(record: dict[str, Any]) -> bool:
    event = wrap_eventbridge(record)
    return any(eb_matches(p, event) for p in eventbridge_patterns())


# -- renderings ------------------------------------------------------------------


def test_cis_pattern_is_byte_exact_and_rendered_from_the_rule() -> None:
    assert CIS_PATTERN == VERBATIM_CIS
    assert CIS_PATTERN.encode() == VERBATIM_CIS.encode()
    assert detection.render_metric_filter(detection.CIS_RULE) == CIS_PATTERN
    assert detection.CIS_METRIC_NAME == "RootAccountUsage"


def test_extended_pattern() -> None:
    assert EXTENDED_PATTERN == EXPECTED_EXTENDED
    assert detection.render_metric_filter(detection.EXTENDED_RULE) == EXTENDED_PATTERN
    assert detection.EXTENDED_METRIC_NAME == "RootActivityExtended"
    assert len(CIS_PATTERN) <= MAX_PATTERN_LENGTH and len(EXTENDED_PATTERN) <= MAX_PATTERN_LENGTH


def test_eventbridge_patterns_render_the_extended_rule() -> None:
    patterns = eventbridge_patterns()
    assert json.loads(json.dumps(patterns)) == patterns  # JSON-serializable, as EventRule needs
    assert len(patterns) == 4
    combos = []
    for p in patterns:
        assert set(p) == {"source", "detail-type", "detail"}
        # Forged events (PutEvents cannot use aws.* sources) never reach the rule.
        assert p["source"] == [{"prefix": "aws."}]
        assert "AWS API Call via CloudTrail" in p["detail-type"]
        assert "AWS Console Sign In via CloudTrail" in p["detail-type"]
        assert "AWS Service Event via CloudTrail" not in p["detail-type"]
        assert p["detail"]["userIdentity"]["type"] == ["Root"]
        combos.append((p["detail"]["userIdentity"]["invokedBy"], p["detail"]["eventType"]))
    absent, signin = [{"exists": False}], ["signin.amazonaws.com"]
    not_service, no_type = [{"anything-but": "AwsServiceEvent"}], [{"exists": False}]
    assert combos == [(absent, not_service), (absent, no_type), (signin, not_service), (signin, no_type)]
    assert eventbridge_patterns() is not eventbridge_patterns()  # callers may mutate their copy


def test_the_rule_is_defined_once() -> None:
    # The extended rule is the CIS rule with two clauses widened (console invokedBy,
    # records without eventType), nothing else: every CIS match is an extended match.
    cis, ext = detection.CIS_RULE, detection.EXTENDED_RULE
    assert len(cis) == len(ext)
    differing = [(a, b) for a, b in zip(cis, ext) if a != b]
    assert len(differing) == 2
    for narrow, wide in differing:
        assert set(narrow) < set(wide)
    assert [{c.path for c in wide} for _, wide in differing] == [{("userIdentity", "invokedBy")}, {("eventType",)}]


def test_a_root_record_without_event_type_is_extended_but_not_cis() -> None:
    # CloudTrail before 2014 (eventVersion 1.01) wrote no eventType.
    record = {"eventVersion": "1.01", "userIdentity": {"type": "Root", "arn": "arn:aws:iam::123456789012:root"},
              "eventSource": "monitoring.amazonaws.com", "eventName": "PutMetricAlarm", "eventID": "old"}
    assert match_cis(record) is False  # CloudWatch Logs: != on a missing field fails
    assert match_extended(record) is True and eventbridge_detects(record)
    finding = classify(record)
    assert finding is not None and (finding.cis_match, finding.detected) == (False, True)
    assert classify({**record, "userIdentity": {"type": "Root", "invokedBy": "cloudformation.amazonaws.com"}}) is None


# -- the corpus -------------------------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_corpus_verdicts(case: dict[str, Any]) -> None:
    record, expect = case["record"], case["expect"]
    assert match_cis(record) is expect["cis"]
    assert match_extended(record) is expect["detected"]
    assert eventbridge_detects(record) is expect["detected"]
    finding = classify(record)
    if expect["class"] is None:
        assert finding is None
    else:
        assert finding is not None
        assert finding.event_class == EventClass(expect["class"])
        assert finding.severity == Severity(expect["severity"])
        assert finding.cis_match is expect["cis"]
        assert finding.detected is expect["detected"]


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_all_renderings_agree(case: dict[str, Any]) -> None:
    record = case["record"]
    finding = classify(record)
    cis, ext, eb = match_cis(record), match_extended(record), eventbridge_detects(record)
    assert ext == eb, "extended metric filter and EventBridge rules disagree"
    assert (finding is not None) == (cis or ext)
    if finding is not None:
        assert (finding.cis_match, finding.detected) == (cis, ext)
    assert not cis or ext, "everything CIS matches, the extended rule must match"
    if not detection.could_match(record):
        assert not (cis or ext), "the replay pre-check must never drop a match"


def test_corpus_covers_what_the_issue_asks_for() -> None:
    classes = {c["expect"]["class"] for c in CORPUS}
    assert classes == {str(e) for e in EventClass} | {None}
    names = " ".join(IDS)
    for needed in ("login-success-mfa", "login-success-no-mfa", "login-failure", "readonly", "access-denied",
                   "signin-invoked", "invoked-by-support", "invoked-by-cloudformation", "service-event",
                   "assume-root-caller", "assume-root-session", "iam-user", "root-admin", "federated",
                   "identity-center", "aws-service-identity"):
        assert needed in names, needed
    assert any(not c["expect"]["cis"] and c["expect"]["detected"] for c in CORPUS)  # CIS gaps are covered
    types = {c["record"].get("userIdentity", {}).get("type") for c in CORPUS}
    assert {"Root", "IAMUser", "AssumedRole", "FederatedUser", "IdentityCenterUser", "AWSService"} <= types


# -- classifier details ----------------------------------------------------------------


def _case(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(c["record"] for c in CORPUS if c["name"] == name))


def test_finding_fields() -> None:
    f = classify(_case("root-key-describe-instances-access-denied"))
    assert isinstance(f, Finding)
    assert f.event_class is EventClass.ACCESS_KEY_CALL
    assert (f.event_name, f.account, f.region) == ("DescribeInstances", "333333333333", "eu-central-1")
    assert f.error_code == "Client.UnauthorizedOperation"
    assert f.event_id and f.event_time and f.source_ip and f.user_agent
    assert f.to_dict()["event_class"] == "access-key-call"
    json.dumps(f.to_dict())
    with pytest.raises(AttributeError):
        f.severity = Severity.LOW  # type: ignore[misc]  # frozen


def test_account_falls_back_to_user_identity() -> None:
    record = _case("root-console-create-bucket")
    del record["recipientAccountId"]
    f = classify(record)
    assert f is not None and f.account == "222222222222"


def test_mfa_used() -> None:
    assert classify(_case("root-console-login-success-mfa")).mfa_used == "Yes"  # type: ignore[union-attr]
    assert classify(_case("root-console-login-success-no-mfa")).mfa_used == "No"  # type: ignore[union-attr]
    assert classify(_case("root-console-create-bucket")).mfa_used == "Yes"  # type: ignore[union-attr]  # session attribute
    assert classify(_case("root-key-run-instances")).mfa_used is None  # type: ignore[union-attr]


def test_assume_root_sessions_are_detected_and_marked() -> None:
    inside = classify(_case("assume-root-session-delete-login-profile"))
    assert inside is not None and inside.assumed_root and inside.cis_match
    assert inside.event_class is EventClass.CREDENTIAL_CHANGE
    assert classify(_case("assume-root-caller-management")) is None
    assert classify(_case("root-console-create-bucket")).assumed_root is False  # type: ignore[union-attr]


def test_signin_invoked_actions_are_only_in_the_extended_form() -> None:
    f = classify(_case("root-signin-invoked-enable-mfa"))
    assert f is not None and not f.cis_match and f.detected and f.invoked_by == "signin.amazonaws.com"


@pytest.mark.parametrize("invoked_by", ["support.amazonaws.com", "cloudformation.amazonaws.com", "SIGNIN.amazonaws.com", "signin.amazonaws.com.evil"])
def test_other_invokers_stay_excluded(invoked_by: str) -> None:
    record = _case("root-console-stop-logging")
    record["userIdentity"]["invokedBy"] = invoked_by
    assert classify(record) is None
    assert not eventbridge_detects(record)


def test_service_events_stay_excluded() -> None:
    record = _case("root-console-stop-logging")
    record["eventType"] = "AwsServiceEvent"
    assert classify(record) is None and not eventbridge_detects(record)


def test_classify_takes_an_eventbridge_detail_and_rejects_non_records() -> None:
    record = _case("root-key-run-instances")
    assert classify(wrap_eventbridge(record)["detail"]) == classify(record)
    assert classify(wrap_eventbridge(record)) is None  # the envelope itself is not a record
    assert classify([]) is None  # type: ignore[arg-type]
    assert classify({}) is None


def test_severity_defaults_and_escalation() -> None:
    assert set(DEFAULT_CLASS_SEVERITY) == set(EventClass)
    assert DEFAULT_CLASS_SEVERITY[EventClass.LOGGING_TAMPER] is Severity.CRITICAL
    assert DEFAULT_CLASS_SEVERITY[EventClass.CONSOLE_LOGIN_FAILURE] is Severity.MEDIUM
    ok = classify(_case("root-console-login-success-mfa"))
    no_mfa = classify(_case("root-console-login-success-no-mfa"))
    assert ok is not None and ok.severity is DEFAULT_CLASS_SEVERITY[EventClass.CONSOLE_LOGIN]
    assert no_mfa is not None and no_mfa.severity is Severity.CRITICAL


def test_event_class_values() -> None:
    assert [e.value for e in EventClass] == [
        "console-login", "console-login-failure", "access-key-call",
        "console-action", "credential-change", "logging-tamper",
    ]


# -- EventBridge envelope -----------------------------------------------------------


def test_wrap_like_aws() -> None:
    login = wrap_eventbridge(_case("root-console-login-success-mfa"))
    assert login["source"] == "aws.signin"
    assert login["detail-type"] == "AWS Console Sign In via CloudTrail"
    assert (login["version"], login["resources"]) == ("0", [])
    assert login["account"] == "222222222222" and login["region"] == "us-east-1" and login["time"]
    api = wrap_eventbridge(_case("root-key-run-instances"))
    assert (api["source"], api["detail-type"]) == ("aws.ec2", "AWS API Call via CloudTrail")
    assert api["detail"]["eventName"] == "RunInstances" and api["id"]
    service = wrap_eventbridge(_case("aws-service-event-kms-rotation"))
    assert service["detail-type"] == "AWS Service Event via CloudTrail"
    action = wrap_eventbridge({**_case("root-console-create-bucket"), "eventType": "AwsConsoleAction"})
    assert action["detail-type"] == "AWS Console Action via CloudTrail"
    assert eventbridge_detects(action["detail"])  # console actions reach the rule too
