"""Code that runs inside AWS Lambda (the alert formatter).

Imports only the standard library, boto3, ``rootwatch.detection`` and ``rootwatch.core``:
the deployed archive holds exactly the modules these files import.
"""
