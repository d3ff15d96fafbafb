"""The one definition of root activity (``rule``) and its renderings: the CIS metric-filter pattern,
EventBridge patterns, the classifier, and the offline matchers for both pattern languages.

Pure Python: imports only the standard library and ``rootwatch.core`` (it also runs inside Lambda).
"""
