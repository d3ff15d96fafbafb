"""rootwatch: root-user activity detection for every account of an AWS Organization.

settings -> accounts -> one monitor per account -> exports.
"""

import os

import pulumi

from rootwatch.core.errors import RootwatchError
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
    posture = prevention.load_posture(settings, os.path.dirname(os.path.abspath(__file__)))
except RootwatchError as exc:  # e.g. an unknown shard name: one line, no traceback
    raise pulumi.RunError(str(exc)) from None
if (empty := organization.empty_scope_problem(settings, scope)) is not None:
    # Deploying nothing is never what a stack means: the filters do not fit the organization.
    raise pulumi.RunError(empty)
# Records each resource's engine view for the `compliance` output: before any resource.
evidence = outputs.record_resources()
secret_keys = rw_settings.secret_config_keys()
try:
    monitors = {a.id: monitor.deploy(a, settings, pulumi.get_stack(), secret_keys) for a in scope.accounts}
except RootwatchError as exc:  # e.g. trail.mode existing and the log group is missing: one line
    raise pulumi.RunError(str(exc)) from None
prevention.deploy(scope, settings, pulumi.get_stack(), monitors, prevention_plan)
outputs.export(scope, monitors)
outputs.export_compliance(evidence, scope, settings, monitors, posture)
