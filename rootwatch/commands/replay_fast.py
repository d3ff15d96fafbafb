"""Replay's fast path: optional accelerators, lazy parsing, and a proof that skipped records cannot match.

Every built-in rule requires ``userIdentity.type = "Root"`` (rule.py checks this
at import). The fast path parses a document with simdjson, which builds no
Python objects, reads that one field per record through a JSON pointer, and
turns into a dict (then evaluates with the plain matcher) only the records where
it is "Root". Everything else is never materialised.

Why skipping is exact: the pointer lookup is simdjson's own reading of the
record (escapes decoded), so a record it reads as not "Root" fails the rule's
first clause in the plain matcher too. Only candidates are converted, with
``as_dict``, and judged by the same evaluator as the plain path, so the
verdicts are the same by construction; tests check it on every corpus record.
A document with no ``"Root"`` token and no ``\\u`` escape cannot hold a match,
and its records are only counted.

One difference, on purpose: JSON with duplicate keys (RFC 8259 leaves their
meaning open; CloudTrail never writes them). The pointer reads the first
``userIdentity``/``type``, orjson keeps the last; duplicate top-level keys in a
log file send the whole file to the plain path.

Anything the fast path does not know (other document shapes, parse errors,
numbers beyond 64 bits) goes back to the plain orjson path, which reports it.

Accelerators are optional: without pysimdjson the plain path runs; without isal
gzip uses the standard library.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

try:  # optional: pip install pysimdjson
    import simdjson as _simdjson
except ImportError:  # pragma: no cover - exercised by the no-accelerator test via monkeypatch
    _simdjson = None

try:  # optional: pip install isal
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover
    _igzip = None

ROOT_TOKEN = b'"Root"'
ROOT_POINTER = "/userIdentity/type"
# Top-level keys that make a JSON Lines object something other than a bare record
# (see replay._doc_records): such lines take the plain path.
_WRAPPER_KEYS = ("Records", "Events", "detail", "digestStartTime", "digestPublicKeyFingerprint")


def accelerators() -> dict[str, bool]:
    return {"simdjson": _simdjson is not None and _enabled["simdjson"], "isal": _igzip is not None and _enabled["isal"]}


_enabled = {"simdjson": True, "isal": True}  # tests switch them off to prove the plain path


def set_enabled(simdjson: bool = True, isal: bool = True) -> None:
    _enabled["simdjson"], _enabled["isal"] = simdjson, isal


def gunzip(data: bytes) -> bytes:
    """gzip.decompress semantics (all members, truncation is EOFError), with ISA-L when installed."""
    if _igzip is not None and _enabled["isal"]:
        try:
            return _igzip.decompress(data)  # type: ignore[no-any-return]
        except EOFError:
            raise
        except Exception as exc:  # isal's IsalError: a corrupt stream, like zlib.error
            raise zlib.error(str(exc)) from None
    return gzip.decompress(data)


_parser: Any = None


def parser() -> Any | None:
    """The process's simdjson parser, kept across inputs: its buffers are allocated once, not per file.

    A parser refuses to parse while documents of the previous parse are alive;
    parse() then returns None and the plain path takes the input.
    """
    global _parser
    if _simdjson is None or not _enabled["simdjson"]:
        return None
    if _parser is None:
        _parser = _simdjson.Parser()
    return _parser


def parse(p: Any, data: bytes) -> Any | None:
    """The lazy document, or None when simdjson refuses it (the plain path then reports why)."""
    try:
        return p.parse(data)
    except Exception:  # ValueError (syntax), RuntimeError (big ints), UnicodeDecodeError
        return None


def records_array(doc: Any) -> Any | None:
    """The lazy Records array of a CloudTrail log file ``{"Records": [...]}``, else None."""
    if type(doc) is not _simdjson.Object:
        return None
    keys = list(doc.keys())
    if "Records" not in keys or len(keys) != len(set(keys)):  # duplicate top-level keys: plain path decides
        return None
    records = doc["Records"]
    return records if type(records) is _simdjson.Array else None


def is_bare_record(doc: Any) -> bool:
    """A JSON Lines object that is one CloudTrail record (no wrapper keys at all)."""
    if type(doc) is not _simdjson.Object:
        return False
    if not ("eventName" in doc or "eventVersion" in doc):
        return False
    return not any(k in doc for k in _WRAPPER_KEYS)


def scan(records: Any, raw: bytes, evaluate: Callable[[Any], Any], on_match: Callable[[Any], None],
         on_not_object: Callable[[int], None]) -> int:
    """Evaluate a lazy array of records whose raw text is ``raw``; returns the number of object records.

    ``on_not_object(index)`` is told of non-object elements, ``on_match`` of matches, in record order.
    """
    obj = _simdjson.Object
    bad = 0
    if ROOT_TOKEN not in raw and b"\\u" not in raw:  # no "Root" string can be spelled: count only
        for i, r in enumerate(records):
            if type(r) is not obj:
                on_not_object(i)
                bad += 1
        return len(records) - bad
    candidates: list[int] = []
    for i, r in enumerate(records):
        if type(r) is not obj:
            on_not_object(i)
            bad += 1
            continue
        try:
            if r.at_pointer(ROOT_POINTER) == "Root":
                candidates.append(i)
        except (KeyError, ValueError, TypeError, IndexError):  # no userIdentity.type, or not an object
            pass
    r = None  # release the element before the caller parses again
    for i in candidates:
        match = evaluate(records[i].as_dict())
        if match is not None:
            on_match(match)
    return len(records) - bad
