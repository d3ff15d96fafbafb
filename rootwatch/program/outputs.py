"""Stack outputs: per-account identifiers (and, with compliance, the evidence)."""

from __future__ import annotations

import sys
from typing import Any, Mapping

import pulumi

from rootwatch import compliance
from rootwatch.compliance import prevention as prevention_evidence
from rootwatch.program import realtime
from rootwatch.program.alerting import route_summary
from rootwatch.program.monitor import RootActivityMonitor
from rootwatch.program.organization import Scope
from rootwatch.program.settings import RootwatchSettings


def export(scope: Scope, monitors: Mapping[str, RootActivityMonitor], hub: Any = None, archive: Any = None) -> None:
    if hub is not None:
        pulumi.export("hub", hub.summary())
    if archive is not None:
        pulumi.export("logArchive", archive.summary())
    pulumi.export(
        "accounts",
        {
            acct_id: {
                **account_summary(m),
                "ou": m.account.ou_name or m.account.ou,
                "trailArn": m.trail_arn,
                "logGroupName": m.log_group_name,
                "metricFilterName": m.metric_filter_name,
                "alarmArn": m.alarm_arn,
                "topicArns": {lvl.value: arn for lvl, arn in m.topic_arns.items()},
            }
            for acct_id, m in monitors.items()
        },
    )
    pulumi.export("skipped", [{"id": s.id, "name": s.name, "reason": s.reason} for s in scope.skipped])


# --- compliance evidence -------------------------------------------------------------
#
# The `compliance` output is computed from the same (type, properties, provider)
# view CrossGuard gets: a stack transformation records every resource as it is
# constructed, and at export time each one's properties are serialized exactly as
# the SDK sends them to the engine (camelCase, provider inputs JSON-encoded).
# compliance.evaluate() then runs over that view once every value resolves.


class ResourceRecorder:
    """Every resource constructed after ``record_resources()``, with its raw properties."""

    def __init__(self, types: frozenset[str] | None) -> None:
        self._types = types
        self._seen: list[tuple[pulumi.Resource, str, str, Mapping[str, Any]]] = []

    def __call__(self, args: pulumi.ResourceTransformationArgs) -> None:
        # Only what the verdict reads: serializing every resource twice costs large orgs dearly.
        if self._types is None or args.type_ in self._types:
            self._seen.append((args.resource, args.type_, args.name, args.props))
        return None  # record only: props and options stay as they are

    def views(self) -> pulumi.Output[list[compliance.PolicyInput]]:
        return pulumi.Output.all(*[_view_output(*seen) for seen in self._seen])


def _view_output(
    res: pulumi.Resource, typ: str, name: str, props: Mapping[str, Any]
) -> pulumi.Output[compliance.PolicyInput]:
    # apply() on a known value runs the coroutine inside the Pulumi event loop.
    return pulumi.Output.from_input(0).apply(lambda _: _engine_view(res, typ, name, props))


# What the verdict and the organization-level prevention evidence read.
RECORDED_TYPES = compliance.EVIDENCE_TYPES | prevention_evidence.ORG_EVIDENCE_TYPES


def record_resources(types: frozenset[str] | None = RECORDED_TYPES) -> ResourceRecorder:
    """Start recording (``types=None``: every type); call before the first resource compliance must see."""
    recorder = ResourceRecorder(types)
    # The SDK-side transformation runs under the mock monitor as well as the engine
    # (engine-side transforms, register_resource_transform, do not run under mocks).
    pulumi.runtime.register_stack_transformation(recorder)
    return recorder


def _args_type(res: pulumi.Resource) -> type | None:
    """The generated ``*Args`` input type that names the resource's properties (camelCase)."""
    from pulumi import _types

    cls = type(res)
    module = sys.modules.get(cls.__module__)
    # `InitArgs` when the class name collides with a nested type (s3 BucketVersioning).
    for candidate in (cls.__name__ + "InitArgs", cls.__name__ + "Args"):
        typ = getattr(module, candidate, None)
        if isinstance(typ, type) and _types.is_input_type(typ):
            return typ
    return None


async def _engine_view(res: pulumi.Resource, typ: str, name: str, props: Mapping[str, Any]) -> compliance.PolicyInput:
    from google.protobuf import json_format
    from pulumi.runtime import rpc

    deps: dict[str, list[pulumi.Resource]] = {}
    args_type = _args_type(res)
    struct = await rpc.serialize_properties(
        props, deps, res, None if args_type else res.translate_input_property, args_type
    )
    provider = None if typ.startswith("pulumi:providers:") else res.get_provider(typ)
    prop_deps = {k: tuple([await d.urn.future() or "" for d in v]) for k, v in deps.items()}
    return compliance.PolicyInput(
        type=typ,
        urn=await res.urn.future() or "",
        # Plain JSON (unknowns and secrets stay wire markers, compliance.normalize reads them).
        props=json_format.MessageToDict(struct),
        provider=(await provider.urn.future() or "") if provider is not None else "",
        name=name,
        dependencies=tuple(dict.fromkeys(u for urns in prop_deps.values() for u in urns)),
        property_dependencies=prop_deps,
    )


def account_summary(m: RootActivityMonitor) -> dict[str, Any]:
    """Name, baseline severity and the hub routes its alerts reach: shared by `accounts` and `compliance`."""
    return {
        "name": m.account.name,
        "severity": m.severity.value,
        # Protocol counts per reachable level: endpoints may be secrets.
        "routes": {lvl.value: route_summary(m.routes.get(lvl, ())) for lvl in m.levels},
    }


def export_compliance(
    recorder: ResourceRecorder, scope: Scope, settings: RootwatchSettings, monitors: Mapping[str, RootActivityMonitor],
    posture: Mapping[str, str] | None = None,
) -> None:
    """The ``compliance`` output (schema rootwatch.compliance/v1, docs/compliance.md)."""
    requirements = requirements_for(settings)
    # The management account is deployed through the default provider.
    management = next((a.id for a in scope.accounts if a.is_management), None)
    in_scope = [a.id for a in scope.accounts]
    details = {acct_id: account_summary(m) for acct_id, m in monitors.items()}
    skipped = [{"id": s.id, "name": s.name, "reason": s.reason} for s in scope.skipped]
    places = [prevention_evidence.AccountPlace(a.id, a.ou_path, a.is_management) for a in scope.accounts]
    pulumi.export(
        "compliance",
        recorder.views().apply(
            lambda views: with_prevention(
                compliance.summarize(
                    compliance.evaluate(
                        [v for v in views if v.type not in prevention_evidence.ORG_EVIDENCE_TYPES],
                        requirements, management,
                    ),
                    in_scope, skipped, details,
                ),
                views, places, dict(posture or {}),
            )
        ),
    )


def with_prevention(
    doc: dict[str, Any],
    views: list[compliance.PolicyInput],
    places: list[prevention_evidence.AccountPlace],
    posture: Mapping[str, str],
) -> dict[str, Any]:
    """Adds the prevention evidence: ``organization``, per-account ``prevention`` and the root-less KPI."""
    org = prevention_evidence.organization_evidence(views)
    per_account = prevention_evidence.account_prevention(places, org, posture)
    doc["organization"] = org
    for acct_id, evidence in per_account.items():
        if acct_id in doc["accounts"]:
            doc["accounts"][acct_id]["prevention"] = evidence
    # Share of member accounts measured root-less (`rootwatch audit --root-credentials`).
    doc["kpis"]["rootlessMemberAccountsPercent"] = prevention_evidence.rootless_share(places, per_account)
    return doc


def requirements_for(settings: RootwatchSettings) -> compliance.Requirements:
    """What a rootwatch stack's own settings require: its ``compliance`` output and ``plan --policy``.

    Real-time rules are required in every region of ``realtime.regions_for`` when real-time
    alerting is on; ``trail.mode: existing`` declares the log group.
    """
    regions: tuple[str, ...] | None = None
    note = "real-time alerting is off (rootwatch:realtime.enabled is false)"
    if settings.realtime.enabled:
        regions, note = tuple(realtime.regions_for(settings)), ""
    existing = settings.trail.log_group_name if settings.trail.mode == "existing" else None
    organization = settings.trail.log_group_name if settings.trail.mode == "organization" else None
    return compliance.Requirements(required_regions=regions, realtime_note=note, existing_log_group=existing,
                                   organization_log_group=organization)
