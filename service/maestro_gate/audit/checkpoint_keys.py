"""Ed25519 keys for checkpoints: load or create the signing key, sign notes, check signatures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from maestro_gate.core.ledger.checkpoint import (
    Checkpoint,
    NoteError,
    SignatureCheck,
    VerifierKey,
    open_checkpoint,
    parse_verifier_key,
    signature_line,
)


@dataclass(frozen=True)
class CheckpointSigner:
    """Signs checkpoints of the log named `origin` with one Ed25519 key."""

    origin: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def verifier_key(self) -> VerifierKey:
        """The C2SP verifier key (key name = origin)."""
        return VerifierKey(name=self.origin, public_key=self.public_key)

    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note text of `checkpoint`."""
        if checkpoint.origin != self.origin:
            raise ValueError(f"checkpoint origin {checkpoint.origin!r} is not {self.origin!r}")
        body = checkpoint.body()
        signature = self.private_key.sign(body.encode())
        return body + "\n" + signature_line(self.origin, self.public_key, signature)


def load_signer(path: Path, origin: str, *, create: bool) -> tuple[CheckpointSigner, bool]:
    """The signer for the PEM key at `path`, created (mode 0600) if allowed; also: created?"""
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return CheckpointSigner(origin, key), False
    if not create:
        raise FileNotFoundError(
            f"no checkpoint signing key at {path} (MAESTRO_GATE_CHECKPOINT_KEY_FILE); "
            "only the embedded profile creates one"
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return CheckpointSigner(origin, key), True


def read_verifier_key(text: str, origin: str | None = None) -> VerifierKey:
    """A verifier key from vkey text, or from an Ed25519 public key PEM named `origin`."""
    if "-----BEGIN" not in text:
        return parse_verifier_key(text)
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise NoteError("the public key is not Ed25519")
    if origin is None:
        raise NoteError("a PEM public key needs the log origin to name it")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return VerifierKey(name=origin, public_key=raw)


def ed25519_check(key: VerifierKey) -> SignatureCheck:
    """A `SignatureCheck` for `key`."""
    public = Ed25519PublicKey.from_public_bytes(key.public_key)

    def check(message: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return check


def verify_note(text: str, key: VerifierKey) -> Checkpoint:
    """The checkpoint in `text` if `key` signed it; raise NoteError otherwise."""
    return open_checkpoint(text, key, ed25519_check(key))
