"""Account vending: the Pulumi Automation API driving this repository's program, one stack per account.

May import ``core`` and ``program`` (settings); needs the Pulumi CLI at run time, never at import.
"""
