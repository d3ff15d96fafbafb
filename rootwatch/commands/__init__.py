"""The operator's ``rootwatch`` CLI: the entry point (``cli``), its shared options, and one module per subcommand.

Top of the stack: may import every other package, but only inside ``run`` where pulumi or boto3 is needed,
so that start-up stays fast.
"""
