"""Record bytes and hashes of the audit chain: RFC 8785 canonical JSON, RFC 6962 leaf hashing.

`rfc8785` is the reference encoder. It costs ~55 µs per record, so writing and verifying go
through `orjson` (a pure function library, like `rfc8785`: no I/O) wherever the two provably
agree, and fall back to `rfc8785` everywhere else. They agree on values made only of objects
with string keys, arrays, strings, booleans, null, integers within ±(2**53 - 1) and finite
floats that orjson prints without an exponent or a bare `.0` (both print the shortest
round-trip digits), with no character at or above U+E000: orjson escapes strings exactly as
ECMAScript does (`\\b \\t \\n \\f \\r \\" \\\\`, other controls as lowercase `\\u00xx`, nothing
else), prints such numbers the same way, and sorts keys by code point, which equals RFC 8785's
UTF-16 order below U+E000. A differential test against `rfc8785` pins this
(tests/test_audit_canonical.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

import orjson
import rfc8785

from maestro_gate.core.ledger.merkle import leaf_hash

SCHEMA_VERSION = 1
GENESIS = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1

__all__ = [
    "GENESIS",
    "SCHEMA_VERSION",
    "canonical",
    "is_canonical",
    "leaf_hash",
    "parse_canonical",
    "seal",
]

# A byte 0xEE..0xF4 starts a character at or above U+E000, where code point order and UTF-16 order
# may differ.
_BELOW_E000_LEAD = bytes(range(0xEE))
# Floats on which orjson and ECMAScript print differently: integral ones (`1.0` against `1`) and
# exponent forms (orjson switches at other magnitudes and always signs the exponent).
_INTEGRAL_FLOAT = re.compile(rb"\.0[,\]}]")
_EXPONENT_MARK = re.compile(rb"e[+-]")
_NUMBER_BODY = b"0123456789."
_TOKEN_START = b":,["
_SORTED = orjson.OPT_SORT_KEYS
_STRICT = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; raises a ValueError for values JCS cannot represent."""
    domain = _fast_domain(value)
    if domain:
        try:
            data = orjson.dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: rfc8785 below raises the ValueError that says so
        else:
            if _sorts_alike(data) and (domain is _EXACT or not _has_divergent_float(data)):
                return data
    return bytes(rfc8785.dumps(value))


def is_canonical(data: bytes) -> bool:
    """True when `data` is the RFC 8785 form of the JSON value it encodes."""
    try:
        return parse_canonical(data)[1]
    except ValueError:
        return False


def parse_canonical(data: bytes) -> tuple[Any, bool]:
    """The JSON value of `data` and whether `data` is its RFC 8785 form; ValueError if not JSON.

    Fast path: `data` is orjson's sorted compact form of its own value, and holds no float form,
    integer beyond 2**53 (OPT_STRICT_INTEGER raises) or character where the sort orders differ.
    Orjson prints a float the other way only as `N.0` or with a signed exponent, both excluded.
    """
    if _sorts_alike(data) and not _has_divergent_float(data):
        try:
            value = orjson.loads(data)
            if orjson.dumps(value, option=_STRICT) == data:
                return value, True
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass
    value = json.loads(data, parse_int=_jcs_number)
    try:
        return value, bytes(rfc8785.dumps(value)) == data
    except ValueError:
        return value, False


def _jcs_number(token: str) -> int | float:
    """JCS numbers are IEEE doubles: an integer token beyond 2**53 is read as one."""
    value = int(token)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(value)


def _sorts_alike(data: bytes) -> bool:
    return data.isascii() or not data.translate(None, _BELOW_E000_LEAD)


def _has_divergent_float(data: bytes) -> bool:
    """True when a number token (after `:`, `,` or `[`) is `N.0` or has an exponent.

    `e-`/`e+` inside hex text (a UUID's `1e-9`) is not preceded by a token start, so it passes.
    """
    if _INTEGRAL_FLOAT.search(data):
        return True
    for mark in _EXPONENT_MARK.finditer(data):
        at = mark.start()
        i = at - 1
        while i >= 0 and data[i] in _NUMBER_BODY:
            i -= 1
        if i < at - 1:
            if i >= 0 and data[i] == 0x2D:
                i -= 1
            if i < 0 or data[i] in _TOKEN_START:
                return True
    return False


_EXACT = 1
_WITH_FLOATS = 2


def _fast_domain(value: Any) -> int:
    """_EXACT when every node is a dict with str keys, list, str, bool, None or safe int;
    _WITH_FLOATS when finite floats occur too; 0 otherwise (rfc8785 decides or raises)."""
    found = _EXACT
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is str or kind is bool or node is None:
            continue
        if kind is dict:
            for key in node:
                if type(key) is not str:
                    return 0
            push(node.values())
        elif kind is list:
            push(node)
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                return 0
        elif kind is float and math.isfinite(node):
            found = _WITH_FLOATS
        else:
            return 0
    return found


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def seal(body: dict[str, Any], index: int, prev: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Place a record at `index` after the leaf `prev`; return (record, bytes, leaf hash)."""
    record = {**body, "index": index, "prev": prev}
    data = canonical(record)
    return record, data, leaf_hash(data)
