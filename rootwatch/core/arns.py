"""ARN helpers with no dependencies (the alert formatter Lambda ships this module too)."""

from __future__ import annotations


def partition(region: str) -> str:
    """The AWS partition a region belongs to."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
