"""Events that weaken organization-level root prevention (rootwatch:prevention).

The management-account calls that weaken it are ``PREVENTION_TAMPER_CALLS`` in the alert
formatter (which words them as tamper alerts), matched by ``rootwatch.program.prevention``'s rule.
Root-credential re-creation in members (``ROOT_RECREATION_EVENTS`` by ``Root``) needs no
rule of its own: every member's root-activity rule matches it (event class credential-change,
critical), see ``detection.rule.CREDENTIAL_CHANGE_EVENTS``.
"""

from __future__ import annotations

RECREATE_PASSWORD_TASK = "IAMCreateRootUserPassword"
# Root credentials coming back in a member account (userIdentity.type Root).
ROOT_RECREATION_EVENTS: tuple[str, ...] = ("CreateLoginProfile", "CreateAccessKey", "EnableMFADevice",
                                           "PasswordRecoveryRequested")
