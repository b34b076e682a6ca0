"""Checkpoints as C2SP signed notes: the text format, key ids and verifier keys, no cryptography.

A checkpoint (C2SP tlog-checkpoint) is the note body

    <origin>\\n<tree size>\\n<base64 root hash>\\n

followed by a blank line and one line per signature, `— <key name> <base64(key id || sig)>`
(C2SP signed-note). Ed25519 signatures (type 0x01) have the key id
`SHA-256(name || 0x0A || 0x01 || public key)[:4]`; the verifier key text is
`<name>+<hex key id>+<base64(0x01 || public key)>`. Signing and checking signatures live in
`maestro_gate.audit.checkpoint_keys`; this module only builds and parses the text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
_SIZE = re.compile(r"^(0|[1-9][0-9]*)$")
_NAME = re.compile(r"^[^\s+]+$")

SignatureCheck = Callable[[bytes, bytes], bool]
"""Checks a raw signature over the note body bytes with one known public key."""


class NoteError(ValueError):
    """A note or checkpoint is malformed or no known key signed it."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the log with `origin` had `size` leaves with `root`."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The note body the signatures cover."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key name, 4-byte key id and raw signature."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key, as in a C2SP verifier key line."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id signatures by this key carry."""
        return key_id(self.name, self.public_key)

    def text(self) -> str:
        """`<name>+<hex key id>+<base64(0x01 || public key)>`."""
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse `<name>+<hex key id>+<base64 key>`; raise NoteError if malformed or inconsistent."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not _NAME.match(parts[0]):
        raise NoteError("a verifier key reads <name>+<hex key id>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        expected_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"verifier key is not valid hex/base64: {exc}") from None
    if len(raw) != 33 or raw[0] != ED25519:
        raise NoteError("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
    key = VerifierKey(name=name, public_key=raw[1:])
    if key.key_id != expected_id:
        raise NoteError("verifier key id does not match its name and key")
    return key


def signature_line(name: str, key: bytes, signature: bytes) -> str:
    """One `— <name> <base64(key id || signature)>` line, newline included."""
    encoded = base64.b64encode(key_id(name, key) + signature).decode()
    return f"{SIGNATURE_PREFIX}{name} {encoded}\n"


def parse_note(text: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its body and signature lines; raise NoteError if malformed."""
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note must not contain control characters other than newline")
    if not text.endswith("\n") or "\n\n" not in text:
        raise NoteError("a note is a body, a blank line and signature lines, ending in newline")
    split = text.rindex("\n\n")
    body, lines = text[: split + 1], text[split + 2 :].splitlines()
    if not lines:
        raise NoteError("a note has no signature lines")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line!r}")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2 or not _NAME.match(fields[0]):
            raise NoteError(f"malformed signature line: {line!r}")
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise NoteError(f"signature is not base64: {line!r}") from None
        if len(raw) < 5:
            raise NoteError(f"signature too short: {line!r}")
        signatures.append(NoteSignature(name=fields[0], key_id=raw[:4], signature=raw[4:]))
    return body, signatures


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note body; raise NoteError if it is not origin, size and root."""
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint body is origin, size and root hash lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin or not _SIZE.match(size):
        raise NoteError("checkpoint origin is empty or its size is not a decimal number")
    try:
        raw = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise NoteError("checkpoint root hash is not base64") from None
    if len(raw) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size), root=raw)


def open_checkpoint(text: str, key: VerifierKey, check: SignatureCheck) -> Checkpoint:
    """The checkpoint of a note that `key` signed; raise NoteError otherwise.

    Signatures by other keys are ignored (C2SP signed-note); a signature by `key` that does not
    verify rejects the note.
    """
    body, signatures = parse_note(text)
    mine = [s for s in signatures if s.name == key.name and s.key_id == key.key_id]
    if not mine:
        raise NoteError(f"the checkpoint carries no signature by key {key.name}+{key.key_id.hex()}")
    for signature in mine:
        if not check(body.encode(), signature.signature):
            raise NoteError("the checkpoint signature does not verify (forged or altered)")
    checkpoint = parse_checkpoint(body)
    return checkpoint
