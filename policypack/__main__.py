"""The rootwatch policy pack: `pulumi preview --policy-pack policypack`.

Only this file constructs the PolicyPack (that starts the analyzer's gRPC server
and blocks); the policies themselves are rootwatch.compliance.policy.policies(), which the
tests, `rootwatch plan --policy` and `rootwatch policy check` use too.
"""

import sys
from pathlib import Path

try:
    from rootwatch.compliance import policy
except ImportError:
    # Running from a checkout without rootwatch installed: use the repository's package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from rootwatch.compliance import policy
    except ImportError as exc:
        raise SystemExit(
            f"rootwatch policy pack: cannot import the rootwatch package ({exc}); "
            "pin it in policypack/requirements.txt (see docs/policy-pack.md)"
        ) from None

from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=policy.PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policy.policies(),
    description="Every AWS account in the stack detects and alerts on root-user activity (CIS CloudWatch.1 chain).",
)
