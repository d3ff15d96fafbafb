"""Calls that weaken organization-level root prevention (rootwatch:prevention).

Watched in the management account by the prevention tamper rule
(``rootwatch.program.prevention``); the alert formatter words them as tamper alerts.
Root-credential re-creation in members (``ROOT_RECREATION_EVENTS`` by ``Root``) needs no
rule of its own: every member's root-activity rule matches it (event class credential-change,
critical), see ``detection.rule.CREDENTIAL_EVENTS``.
"""

from __future__ import annotations

# (eventSource, event names): disabling the IAM features, or the trusted access they need;
# editing, detaching or deleting the root-deny SCP, or switching SCPs off at the root.
PREVENTION_TAMPER_CALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("iam.amazonaws.com", ("DisableOrganizationsRootCredentialsManagement", "DisableOrganizationsRootSessions")),
    ("organizations.amazonaws.com", ("DetachPolicy", "UpdatePolicy", "DeletePolicy", "DisableAWSServiceAccess",
                                     "DisablePolicyType")),
    # Caller side of a root task that re-creates a member's root password (logged in the management account).
    ("sts.amazonaws.com", ("AssumeRoot",)),
)
RECREATE_PASSWORD_TASK = "IAMCreateRootUserPassword"
# Root credentials coming back in a member account (userIdentity.type Root).
ROOT_RECREATION_EVENTS: tuple[str, ...] = ("CreateLoginProfile", "CreateAccessKey", "EnableMFADevice",
                                           "PasswordRecoveryRequested")
