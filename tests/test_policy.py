"""rootwatch.compliance.policy: the CrossGuard rules, in-process and as the real pack process.

The example stack's registrations pass every policy; each policy catches at
least one realistic weakened variant with a clear message. The pulumi_policy
objects are exercised the way the analyzer calls them (proxied props, config),
and policypack/__main__.py is started and queried over gRPC like the CLI does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from rootwatch import compliance
from rootwatch.compliance import PolicyInput, policy
from rootwatch.core.errors import RootwatchError
from rootwatch.program import mockrun

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = Path(__file__).resolve().parent / "data" / "stack-exports"
MEMBER = "222222222201"


@pytest.fixture(scope="module")
def resources() -> list[PolicyInput]:
    return policy.from_registered(mockrun.run("example").resources)


def changed(resources: list[PolicyInput], typ: str, edit: Callable[[dict[str, Any]], None], name_has: str = "") -> list[PolicyInput]:
    out, done = [], False
    for r in resources:
        if not done and r.type == typ and f"rootwatch-{MEMBER}-" in r.name and name_has in r.name:
            props = json.loads(json.dumps(compliance.normalize(dict(r.props))))
            edit(props)
            r, done = dataclasses.replace(r, props=props), True
        out.append(r)
    assert done
    return out


def by_policy(violations: list[policy.Violation]) -> dict[str, list[policy.Violation]]:
    out: dict[str, list[policy.Violation]] = {}
    for v in violations:
        out.setdefault(v.policy, []).append(v)
    return out


def test_the_example_stack_passes_every_policy(resources: list[PolicyInput]) -> None:
    assert policy.check_resources(resources) == []


@pytest.mark.parametrize("stack", ["example", "explicit"])
def test_rootwatch_stacks_pass_with_the_config_their_settings_imply(stack: str) -> None:
    from rootwatch.program import outputs
    from rootwatch.program import settings as rw_settings

    run = mockrun.run(stack)
    config = policy.config_for(outputs.requirements_for(rw_settings.load(run.config.values)))
    assert policy.check_resources(policy.from_registered(run.resources), config) == []
    if stack == "explicit":
        # Without the declared log group (trail.mode existing) the chain has no trail to start from.
        assert config[policy.COMPLETE_CHAIN]["existingLogGroupName"] == "/org/cloudtrail/account-trail"
        missing = policy.check_resources(policy.from_registered(run.resources))
        assert any("no CloudTrail trail in this account" in v.message for v in missing)
    else:
        assert "eu-west-1" in config[policy.COMPLETE_CHAIN]["requiredRegions"]


# --- one weakened variant per policy -----------------------------------------------------

VARIANTS = [
    # (policy, resource type, edit, name filter, message fragment, resource at fault)
    (policy.TRAIL, compliance.TRAIL_TYPE, lambda p: p.update(isMultiRegionTrail=False), "",
     "the trail is single-region", "-trail"),
    (policy.TRAIL, compliance.TRAIL_TYPE, lambda p: p["eventSelectors"][0].update(readWriteType="ReadOnly"), "",
     "log only ReadOnly management events", "-trail"),
    (policy.METRIC_FILTER, compliance.METRIC_FILTER_TYPE,
     lambda p: p.update(pattern=p["pattern"].replace("}", ' && $.sourceIPAddress != "203.0.113.7"}')), "",
     "has an edited pattern", "-metric-filter"),
    (policy.ALARM, compliance.ALARM_TYPE, lambda p: p.update(period=86400), f"{MEMBER}-alarm",
     "period is 86400 s; at most 300 s", "-alarm"),
    (policy.ALARM, compliance.ALARM_TYPE, lambda p: p.update(actionsEnabled=False), f"{MEMBER}-alarm",
     "has its actions disabled (actionsEnabled: false)", "-alarm"),
    (policy.TOPIC, compliance.TOPIC_TYPE, lambda p: p.update(kmsMasterKeyId="alias/aws/sns"), "critical",
     "encrypted with the AWS-managed key alias/aws/sns", "-topic-critical"),
    (policy.REALTIME_RULE, compliance.EVENT_RULE_TYPE, lambda p: p.update(state="ENABLED"), "rule-us-east-2",
     "read-only root calls (List*, Get*, Describe*) never reach it", "-rule-us-east-2"),
    (policy.COMPLETE_CHAIN, compliance.METRIC_FILTER_TYPE, lambda p: p.update(logGroupName="/app/logs"), "",
     "not on the trail's log group '/rootwatch/cloudtrail'", "-metric-filter"),
]


@pytest.mark.parametrize(("name", "typ", "edit", "name_has", "message", "at_fault"), VARIANTS)
def test_each_policy_catches_its_weakened_variant(
    resources: list[PolicyInput], name: str, typ: str, edit: Callable, name_has: str, message: str, at_fault: str
) -> None:
    # Check 5 of the chain runs only where regions are required (requiredRegions defaults to []).
    config = {policy.COMPLETE_CHAIN: {"requiredRegions": ["us-east-1", "us-east-2"]}}
    found = by_policy(policy.check_resources(changed(resources, typ, edit, name_has), config))
    hits = [v for v in found.get(name, []) if message in v.message]
    assert hits, {k: [v.message for v in vs] for k, vs in found.items()}
    assert hits[0].urn.endswith(f"::rootwatch-{MEMBER}{at_fault}") and hits[0].enforcement_level == "mandatory"
    # The chain policy reports every weakness too, naming the account.
    assert any(v.account == MEMBER for v in found[policy.COMPLETE_CHAIN])


def test_a_topic_with_no_subscription_breaks_the_chain(resources: list[PolicyInput]) -> None:
    # The member topic's one subscriber is the hub's intake queue.
    weakened = [r for r in resources if not (r.type == compliance.SUBSCRIPTION_TYPE and r.name.endswith(f"-intake-{MEMBER}"))]
    found = policy.check_resources(weakened)
    assert len(found) == 1
    v = found[0]
    assert v.policy == policy.COMPLETE_CHAIN and v.account == MEMBER
    assert v.message.startswith(f"account {MEMBER}: topic: topic 'rootwatch-alerts-critical' has no subscription")
    assert v.urn.endswith(f"::rootwatch-{MEMBER}-topic-critical")


def test_a_missing_chain_is_reported_against_the_account_provider(resources: list[PolicyInput]) -> None:
    weakened = [r for r in resources if not (r.type == compliance.TRAIL_TYPE and MEMBER in r.name)]
    v = next(v for v in policy.check_resources(weakened) if "trail:" in v.message)
    assert "no CloudTrail trail in this account" in v.message and v.urn.endswith(f"::account-{MEMBER}")


def test_values_unknown_until_deploy_are_advisory_only(resources: list[PolicyInput]) -> None:
    weakened = changed(resources, compliance.ALARM_TYPE, lambda p: p.update(period=compliance.UNKNOWN), f"{MEMBER}-alarm")
    found = policy.check_resources(weakened)
    assert [(v.policy, v.enforcement_level) for v in found] == [(policy.VERIFY_AFTER_DEPLOY, "advisory")]
    assert "cannot verify until deploy" in found[0].message
    assert not policy.has_mandatory(found)


# --- config ------------------------------------------------------------------------------


def test_thresholds_default_in_code() -> None:
    req = policy.requirements_from(None)
    assert (req.min_retention_days, req.max_alarm_period_seconds, req.required_regions) == (365, 300, None)
    assert policy.DEFAULTS == {"minRetentionDays": 365, "maxAlarmPeriodSeconds": 300, "requiredRegions": [],
                               "existingLogGroupName": None, "organizationLogGroupName": None}


def test_thresholds_from_config(resources: list[PolicyInput]) -> None:
    config = {
        policy.ALARM: {"maxAlarmPeriodSeconds": 30},
        policy.COMPLETE_CHAIN: {"minRetentionDays": 400, "requiredRegions": ["us-east-1", "ap-south-1"]},
    }
    found = by_policy(policy.check_resources(resources, config))
    assert all("period is 60 s; at most 30 s" in v.message for v in found[policy.ALARM])
    chain = " ".join(v.message for v in found[policy.COMPLETE_CHAIN])
    assert "at least 400 are required" in chain and "no EventBridge root-activity rule in ap-south-1" in chain


def test_enforcement_levels_from_config(resources: list[PolicyInput]) -> None:
    weakened = changed(resources, compliance.ALARM_TYPE, lambda p: p.update(period=86400), f"{MEMBER}-alarm")
    levels = {(v.policy, v.enforcement_level) for v in policy.check_resources(weakened, {"all": "advisory"})}
    assert levels == {(policy.ALARM, "advisory"), (policy.COMPLETE_CHAIN, "advisory")}
    only_chain = policy.check_resources(weakened, {policy.ALARM: {"enforcementLevel": "disabled"}})
    assert {v.policy for v in only_chain} == {policy.COMPLETE_CHAIN}
    remediate = policy.check_resources(weakened, {policy.ALARM: "remediate", "all": "advisory"})
    assert {(v.policy, v.enforcement_level) for v in remediate} == {(policy.ALARM, "mandatory"), (policy.COMPLETE_CHAIN, "advisory")}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rootwatch-alarms": "advisory"}, "unknown policy 'rootwatch-alarms'"),
        ({policy.ALARM: "strict"}, "enforcement level must be one of"),
        ({policy.ALARM: {"minRetentionDays": 30}}, "rootwatch-alarm: unknown setting 'minRetentionDays'"),
        ({policy.COMPLETE_CHAIN: {"minRetentionDays": "a year"}}, "minRetentionDays must be a positive integer"),
        ({policy.COMPLETE_CHAIN: {"requiredRegions": "us-east-1"}}, "requiredRegions must be a list"),
        (["advisory"], "must be a JSON object"),
    ],
)
def test_bad_config_is_a_clear_error(config: Any, message: str) -> None:
    with pytest.raises(RootwatchError, match="policy config: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        policy.check_resources([], config)


# --- the pulumi_policy objects -------------------------------------------------------------


def _opts() -> Any:
    from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions

    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def test_policies_are_built_with_levels_and_config_schemas() -> None:
    from pulumi_policy import (
        EnforcementLevel,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    built = {p.name: p for p in policy.policies()}
    assert list(built) == list(policy.NAMES)
    assert isinstance(built[policy.TRAIL], ResourceValidationPolicy)
    assert isinstance(built[policy.COMPLETE_CHAIN], StackValidationPolicy)
    assert built[policy.COMPLETE_CHAIN].enforcement_level == EnforcementLevel.MANDATORY
    assert built[policy.VERIFY_AFTER_DEPLOY].enforcement_level == EnforcementLevel.ADVISORY
    schema = built[policy.COMPLETE_CHAIN].config_schema.properties
    assert set(schema) == {"minRetentionDays", "maxAlarmPeriodSeconds", "requiredRegions", "existingLogGroupName",
                           "organizationLogGroupName"}
    assert schema["maxAlarmPeriodSeconds"]["default"] == 300
    assert set(built[policy.ALARM].config_schema.properties) == {"maxAlarmPeriodSeconds"}


def test_resource_policy_runs_on_proxied_props_with_config(resources: list[PolicyInput]) -> None:
    from pulumi_policy import ResourceValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    alarm_policy = next(p for p in policy.policies() if p.name == policy.ALARM)
    alarm = next(r for r in resources if r.type == compliance.ALARM_TYPE and r.name.endswith(f"{MEMBER}-alarm"))

    def violations(props: dict[str, Any], config: dict[str, Any] | None) -> list[str]:
        found: list[str] = []
        args = ResourceValidationArgs(alarm.type, unknown_checking_proxy(props), alarm.urn, alarm.name, _opts(), None, config)
        alarm_policy.validate(args, lambda message, urn=None: found.append(message))
        return found

    props = json.loads(json.dumps(compliance.normalize(dict(alarm.props))))
    assert violations(props, None) == []
    assert "at most 30 s" in violations(props, {"maxAlarmPeriodSeconds": 30})[0]
    # A preview: unknown values are neither a violation nor an UnknownValueError.
    props["period"] = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"
    props["alarmActions"] = "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2"
    assert violations(props, None) == []


def test_stack_policy_runs_on_policy_resources(resources: list[PolicyInput]) -> None:
    from pulumi_policy import (
        PolicyProviderResource,
        PolicyResource,
        StackValidationArgs,
    )
    from pulumi_policy.proxy import unknown_checking_proxy

    weakened = [r for r in resources if not (r.type == compliance.SUBSCRIPTION_TYPE and r.name.endswith(f"-intake-{MEMBER}"))]
    providers = {r.urn: r for r in weakened if r.type == compliance.PROVIDER_TYPE}
    by_urn: dict[str, PolicyResource] = {}
    for r in weakened:
        if r.type == compliance.PROVIDER_TYPE:
            continue  # the analyzer passes providers along with each resource here
        prov = providers.get(r.provider)
        provider = PolicyProviderResource(prov.type, unknown_checking_proxy(dict(prov.props)), prov.urn, prov.name) if prov else None
        by_urn[r.urn] = PolicyResource(r.type, unknown_checking_proxy(json.loads(json.dumps(compliance.normalize(dict(r.props)), default=str))), r.urn, r.name,
                                       _opts(), provider, None, [], {})
    for r in weakened:
        if r.urn in by_urn:
            by_urn[r.urn].dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
    chain = next(p for p in policy.policies() if p.name == policy.COMPLETE_CHAIN)
    found: list[tuple[str, str | None]] = []
    chain.validate(StackValidationArgs(list(by_urn.values())), lambda message, urn=None: found.append((message, urn)))
    assert [m for m, _ in found] == [
        f"account {MEMBER}: topic: topic 'rootwatch-alerts-critical' has no subscription: the alarm would notify nobody; "
        "add at least one TopicSubscription (and confirm it)"
    ]
    assert found[0][1].endswith(f"::rootwatch-{MEMBER}-topic-critical")


# --- the pack process, as `pulumi preview --policy-pack` talks to it ------------------------


def _struct(value: dict[str, Any]) -> Any:
    from google.protobuf import json_format, struct_pb2

    return json_format.ParseDict(value, struct_pb2.Struct())


def test_the_pack_process_serves_the_policies_over_grpc() -> None:
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2 as pb
    from pulumi.runtime.proto import analyzer_pb2_grpc as pb_grpc

    items = policy.from_stack_export(json.loads((EXPORTS / "org-security-weakened.json").read_text()))
    providers = {r.urn: r for r in items if r.type == compliance.PROVIDER_TYPE}

    def resource(r: PolicyInput) -> Any:
        prov = providers.get(r.provider)
        return pb.AnalyzerResource(
            type=r.type, urn=r.urn, name=r.name, properties=_struct(compliance.normalize(dict(r.props))), parent=r.parent,
            provider=pb.AnalyzerProviderResource(type=prov.type, urn=prov.urn, name=prov.name, properties=_struct(dict(prov.props))) if prov else None,
            dependencies=list(r.dependencies),
            propertyDependencies={k: pb.AnalyzerPropertyDependencies(urns=list(v)) for k, v in r.property_dependencies.items()},
        )

    # This checkout's package, not whichever rootwatch the interpreter has installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "policypack" / "__main__.py")], cwd=ROOT / "policypack",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the pack did not print its port"
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        stub = pb_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
        assert info.name == "rootwatch" and [p.name for p in info.policies] == list(policy.NAMES)

        stack = stub.AnalyzeStack(pb.AnalyzeStackRequest(resources=[resource(r) for r in items]), timeout=10)
        chain = [d for d in stack.diagnostics if d.policyName == policy.COMPLETE_CHAIN]
        assert len(chain) == 4 and all(d.enforcementLevel == pb.MANDATORY for d in chain)
        assert any("has no subscription" in d.message and d.urn.endswith("::mgmt-alerts") for d in chain)

        trail = next(r for r in items if r.urn.endswith("::member-trail"))
        prov = providers[trail.provider]
        single = stub.Analyze(pb.AnalyzeRequest(
            type=trail.type, urn=trail.urn, name=trail.name, properties=_struct(compliance.normalize(dict(trail.props))),
            provider=pb.AnalyzerProviderResource(type=prov.type, urn=prov.urn, name=prov.name, properties=_struct(dict(prov.props))),
        ), timeout=10)
        assert [d.policyName for d in single.diagnostics] == [policy.TRAIL]
        assert "the trail is single-region" in single.diagnostics[0].message
    finally:
        proc.kill()
        proc.wait()
