"""What ``pulumi up`` runs: typed stack settings, account discovery, the per-account chain
(monitor, alerting, real-time), the stack outputs, and the same program under the mock runtime.

May import ``core``, ``detection``, ``lambdas`` (to package them) and ``compliance``; never ``commands``.
"""
