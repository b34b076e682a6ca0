"""API keys: `mgk_` + 256 random bits, stored only as SHA-256, compared in constant time.

The keys file (`MAESTRO_GATE_API_KEYS_FILE`) is JSON:
`{"keys": [{"name": "analyst-runtime", "roles": ["agent"],
            "subjects": ["spiffe://corp.example/agent/analyst"], "sha256": "<hex>"}]}`.
`subjects` lists the agent ids an `agent` key may ask for; `["*"]` means any.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from maestro_gate.core.decision.callers import ANY_SUBJECT, ROLES, Caller

KEY_PREFIX = "mgk_"


def new_key() -> str:
    """A fresh high-entropy API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One stored key: who it is, what it may do, and the hash of the secret."""

    name: str
    roles: frozenset[str]
    subjects: frozenset[str]
    sha256: str

    def to_json(self) -> dict[str, object]:
        """The entry as the keys file stores it."""
        return {
            "name": self.name,
            "roles": sorted(self.roles),
            "subjects": sorted(self.subjects),
            "sha256": self.sha256,
        }


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    """The roles as a set; raise ValueError naming any unknown role."""
    given = frozenset(r.strip() for r in roles if r.strip())
    unknown = sorted(given - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
    if not given:
        raise ValueError(f"at least one role is required: {', '.join(ROLES)}")
    return given


def read_keys(path: Path) -> list[KeyEntry]:
    """The entries of a keys file; raise ValueError when it is malformed."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read API keys file {path}: {exc}") from exc
    listed = document.get("keys", []) if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise ValueError(f'{path}: an API keys file is a JSON object with a "keys" list')
    entries = []
    for i, raw in enumerate(listed):
        try:
            digest = str(raw["sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("sha256 must be 64 hex digits")
            entries.append(
                KeyEntry(
                    name=str(raw["name"]),
                    roles=check_roles(raw["roles"]),
                    subjects=frozenset(str(s) for s in raw.get("subjects", [])),
                    sha256=digest,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: key #{i} is malformed: {exc}") from exc
    return entries


def write_keys(path: Path, entries: Iterable[KeyEntry]) -> None:
    """Write a keys file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"keys": [e.to_json() for e in entries]}, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body)
    os.replace(tmp, path)


def add_key(
    path: Path, name: str, roles: Iterable[str], subjects: Iterable[str] = (ANY_SUBJECT,)
) -> str:
    """Create a key, store its hash under `name` in the keys file, and return the key once."""
    entries = read_keys(path) if path.exists() else []
    if any(e.name == name for e in entries):
        raise ValueError(f"a key named {name!r} already exists in {path}")
    key = new_key()
    entry = KeyEntry(name, check_roles(roles), frozenset(subjects), key_hash(key))
    write_keys(path, [*entries, entry])
    return key


def revoke_key(path: Path, name: str) -> None:
    """Remove the key stored under `name` from the keys file."""
    entries = read_keys(path)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        raise ValueError(f"no key named {name!r} in {path}")
    write_keys(path, kept)


def dev_key(path: Path) -> tuple[str, bool]:
    """The development key stored at `path`, created (owner-only) when missing; True if new."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True


class KeyRing:
    """Looks a presented key up among stored hashes, comparing every one in constant time."""

    def __init__(self, entries: Iterable[KeyEntry], method: str = "api_key") -> None:
        self._entries = [(bytes.fromhex(e.sha256), e) for e in entries]
        self._method = method

    def __len__(self) -> int:
        return len(self._entries)

    def caller(self, key: str) -> Caller | None:
        """The caller a key belongs to, or None."""
        presented = hashlib.sha256(key.encode()).digest()
        found: KeyEntry | None = None
        for stored, entry in self._entries:
            if hmac.compare_digest(stored, presented):
                found = entry
        if found is None:
            return None
        return Caller(
            principal=found.name, roles=found.roles, subjects=found.subjects, method=self._method
        )
