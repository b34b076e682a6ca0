"""Record bytes and hashes of the audit chain: RFC 8785 canonical JSON, RFC 6962 leaf hashing.

`rfc8785` is a pure function library (no I/O), so the core may use it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

SCHEMA_VERSION = 1
GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; raises a ValueError for values JCS cannot represent."""
    return rfc8785.dumps(value)


def leaf_hash(record_bytes: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || bytes)."""
    return hashlib.sha256(b"\x00" + record_bytes).digest()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def seal(body: dict[str, Any], index: int, prev: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Place a record at `index` after the leaf `prev`; return (record, bytes, leaf hash)."""
    record = {**body, "index": index, "prev": prev}
    data = canonical(record)
    return record, data, leaf_hash(data)
