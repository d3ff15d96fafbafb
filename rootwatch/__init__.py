"""rootwatch: organization-wide detection of AWS root-user activity."""

__version__ = "0.1.0"
