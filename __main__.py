"""rootwatch: root-user activity detection for every account of an AWS Organization.

settings -> accounts -> the log archive (trail.archive) -> one monitor per member account -> the alert hub
-> exports.
"""

import os

import pulumi

from rootwatch.core.errors import RootwatchError
from rootwatch.program import archive as log_archive
from rootwatch.program import hub as alert_hub
from rootwatch.program import monitor, organization, outputs, prevention
from rootwatch.program import settings as rw_settings

try:
    # Validated before anything is registered: a bad config deploys nothing.
    settings = rw_settings.from_pulumi()
except RootwatchError as exc:
    raise pulumi.RunError(f"invalid stack config: {exc}") from None

try:
    scope = organization.discover(settings)
    # Org-level prevention is checked against the discovered organization before anything registers.
    prevention_plan = prevention.plan(scope, settings)
    log_archive.archive_account(settings, scope)  # trail.archive names an account of the stack
    posture = prevention.load_posture(settings, os.path.dirname(os.path.abspath(__file__)))
except RootwatchError as exc:  # e.g. no account in scope, an unknown shard: one line, no traceback
    raise pulumi.RunError(str(exc)) from None
# Records each resource's engine view for the `compliance` output: before any resource.
evidence = outputs.record_resources()
secret_keys = rw_settings.secret_config_keys()
stack = pulumi.get_stack()
assert scope.hub is not None  # discover() refuses a config without a hub
# One provider per account: the hub's is shared with its monitor when the hub is also a member.
providers = {a.id: organization.provider_for(a, settings, stack) for a in {x.id: x for x in (*scope.accounts, scope.hub)}.values()}
hub_ref = monitor.HubRef(scope.hub.id, settings.hub_region)
try:
    archive = log_archive.deploy(settings, scope, stack, providers)
    ready = archive.ready if archive else []
    monitors = {
        a.id: monitor.deploy(a, settings, stack, secret_keys, providers[a.id], hub_ref, ready) for a in scope.accounts
    }
except RootwatchError as exc:  # e.g. trail.mode existing and the log group is missing: one line
    raise pulumi.RunError(str(exc)) from None
hub = alert_hub.AlertHub(
    alert_hub.RESOURCE_NAME,
    alert_hub.AlertHubArgs(
        settings=settings, hub_account=scope.hub, members=scope.accounts, organization_id=scope.organization_id,
        stack_tags=organization.managed_tags(stack), secret_endpoints="routes" in secret_keys,
        member_resources=list(monitors.values()),
    ),
    pulumi.ResourceOptions(provider=providers[scope.hub.id]),
)
prevention.deploy(scope, settings, stack, monitors, prevention_plan)
outputs.export(scope, monitors, hub, archive)
outputs.export_compliance(evidence, scope, settings, monitors, posture)
