"""Signed checkpoints in the C2SP signed-note format: text, key ids, verifier keys, signatures."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from maestro_gate.audit.checkpoint_keys import load_signer, read_verifier_key, verify_note
from maestro_gate.core.ledger.checkpoint import (
    Checkpoint,
    NoteError,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
)
from tests.audit_support import ORIGIN, signer

ROOT = hashlib.sha256(b"root").digest()


def test_note_has_the_c2sp_layout(tmp_path: Path) -> None:
    """Origin, size, base64 root, blank line, then `— name base64(keyid || sig)`."""
    key = signer(tmp_path)
    note = key.sign(Checkpoint(ORIGIN, 42, ROOT))
    lines = note.split("\n")
    assert lines[:4] == [ORIGIN, "42", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    raw = base64.b64decode(lines[4].split(" ")[2])
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public_key).digest()[:4]
    assert raw[:4] == expected_id
    assert len(raw) == 4 + 64
    assert note.endswith("\n")


def test_signed_note_verifies_and_parses_back(tmp_path: Path) -> None:
    """A note verifies with its key and yields the same origin, size and root."""
    key = signer(tmp_path)
    assert verify_note(key.sign(Checkpoint(ORIGIN, 7, ROOT)), key.verifier_key) == Checkpoint(
        ORIGIN, 7, ROOT
    )


def test_altered_body_fails_its_signature(tmp_path: Path) -> None:
    """Changing the size in a signed note makes its signature fail."""
    key = signer(tmp_path)
    note = key.sign(Checkpoint(ORIGIN, 7, ROOT)).replace("\n7\n", "\n8\n", 1)
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(note, key.verifier_key)


def test_signatures_by_unknown_keys_are_ignored(tmp_path: Path) -> None:
    """A cosignature by another key is ignored; the note still verifies with ours."""
    key = signer(tmp_path)
    other, _ = load_signer(tmp_path / "witness.key", "witness.example", create=True)
    note = key.sign(Checkpoint(ORIGIN, 3, ROOT))
    cosigned = note + other.sign(Checkpoint("witness.example", 3, ROOT)).split("\n\n")[1]
    assert verify_note(cosigned, key.verifier_key).size == 3


def test_note_without_our_signature_is_refused(tmp_path: Path) -> None:
    """A note signed only by another key is refused."""
    key = signer(tmp_path)
    other, _ = load_signer(tmp_path / "other.key", ORIGIN, create=True)
    with pytest.raises(NoteError, match="no signature by key"):
        verify_note(other.sign(Checkpoint(ORIGIN, 3, ROOT)), key.verifier_key)


def test_verifier_key_round_trips_in_vkey_and_pem_form(tmp_path: Path) -> None:
    """The vkey text and the PEM public key both name the same verifier key."""
    key = signer(tmp_path)
    text = key.verifier_key.text()
    assert text.startswith(f"{ORIGIN}+{key.verifier_key.key_id.hex()}+")
    assert parse_verifier_key(text) == key.verifier_key
    assert read_verifier_key(key.public_pem(), ORIGIN) == key.verifier_key


def test_key_file_is_created_once_with_owner_only_mode(tmp_path: Path) -> None:
    """The signing key is created on first use (mode 0600) and reused afterwards."""
    path = tmp_path / "k" / "checkpoint.key"
    first, created = load_signer(path, ORIGIN, create=True)
    again, created_again = load_signer(path, ORIGIN, create=False)
    assert (created, created_again) == (True, False)
    assert first.public_key == again.public_key
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError):
        load_signer(tmp_path / "missing.key", ORIGIN, create=False)


@pytest.mark.parametrize(
    "text",
    [
        "origin\n7\nroot\n\n",
        "origin\n07\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n7\n" + base64.b64encode(b"short").decode() + "\n",
        "\n7\n" + base64.b64encode(ROOT).decode() + "\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(text: str) -> None:
    """Bad sizes (leading zeros), short or non-base64 roots and empty origins are refused."""
    with pytest.raises(NoteError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "text", ["body\n", "body\n\nnot a signature\n", "body\x07\n\n\u2014 a AAAAAAA=\n"]
)
def test_malformed_notes_are_refused(text: str) -> None:
    """Notes without signatures, with stray lines or control characters are refused."""
    with pytest.raises(NoteError):
        parse_note(text)
