"""Minting credentials for tests and local tools: a keys file with known keys.

keys = write_keys_file(tmp_path / "keys.json", {"tester": (ROLES, ["*"])})
settings = Settings(api_keys_file=tmp_path / "keys.json", ...)
client.post("/v1/decide", json=body, headers=key_header(keys["tester"]))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from maestro_gate.auth.keys import KeyEntry, key_hash, new_key, write_keys
from maestro_gate.core.decision.callers import ANY_SUBJECT, ROLES

EVERYTHING: tuple[Iterable[str], Iterable[str]] = (ROLES, (ANY_SUBJECT,))
"""Every role, any subject: the spec of a do-anything test principal."""


def write_keys_file(
    path: Path, principals: Mapping[str, tuple[Iterable[str], Iterable[str]]]
) -> dict[str, str]:
    """Write a keys file for `{name: (roles, subjects)}`; return `{name: key}`."""
    keys = {name: new_key() for name in principals}
    write_keys(
        path,
        [
            KeyEntry(name, frozenset(roles), frozenset(subjects), key_hash(keys[name]))
            for name, (roles, subjects) in principals.items()
        ],
    )
    return keys


def key_header(key: str) -> dict[str, str]:
    """The `X-API-Key` header for a key."""
    return {"X-API-Key": key}
