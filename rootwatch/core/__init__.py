"""Small shared pieces every layer may use: errors, severity levels, ARN helpers, progress, the org snapshot format.

Imports only the standard library and other ``rootwatch.core`` modules (the Lambda archive ships some of them).
"""
