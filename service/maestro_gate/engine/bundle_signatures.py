"""OPA bundle signatures: `.signatures.json` holding one JWT that lists every file's hash.

The format is OPA's (`opa sign`, `opa build --signing-key`): `{"signatures": ["<JWT>"]}`, the
JWT payload `{"files": [{"name", "hash", "algorithm": "SHA-256"}], "keyid"?, "scope"?}` and its
header `kid` when a key id is given. `.manifest` and `data.json` are hashed over their parsed
JSON with object keys sorted (OPA's structured hash, so whitespace does not matter); every other
file over its bytes. A bundle verifies when the JWT verifies against the configured public key,
its `scope` equals the expected one, and its file list names exactly the bundle's files with
matching hashes. The algorithm follows the key: RS256 (RSA), ES256/ES384/ES512 (EC), EdDSA.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from maestro_gate.core.errors import BundleError

SIGNATURES_FILE = ".signatures.json"
HASH_ALGORITHM = "SHA-256"
_STRUCTURED = frozenset({".manifest", "data.json", SIGNATURES_FILE})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class _Number(str):
    """A JSON number kept as its literal text, as Go's `json.Number` keeps it."""


def file_hash(name: str, raw: bytes) -> str:
    """Hex SHA-256 of a bundle file as OPA computes it (structured for `.manifest`/`data.json`)."""
    h = hashlib.sha256()
    if name.rsplit("/", 1)[-1] in _STRUCTURED:
        try:
            value = json.loads(raw, parse_int=_Number, parse_float=_Number)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{name} is not valid JSON: {exc}") from exc
        _walk(value, h)
    else:
        h.update(raw)
    return h.hexdigest()


def file_list(files: Mapping[str, bytes]) -> list[dict[str, str]]:
    """The JWT `files` claim for `files` (name → bytes), sorted by name."""
    return [
        {"name": name, "hash": file_hash(name, files[name]), "algorithm": HASH_ALGORITHM}
        for name in sorted(files)
    ]


def sign(
    files: Mapping[str, bytes],
    private_key_pem: bytes,
    *,
    key_id: str | None = None,
    scope: str | None = None,
    algorithm: str | None = None,
) -> bytes:
    """The `.signatures.json` bytes signing `files` with a PEM private key (RSA, EC or Ed25519)."""
    try:
        key = load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"signing key is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise BundleError("signing key must be RSA, EC (P-256/384/521) or Ed25519")
    alg = algorithm or _algorithm_for(key)
    payload: dict[str, Any] = {"files": file_list(files)}
    if key_id:
        payload["keyid"] = key_id
    if scope:
        payload["scope"] = scope
    headers = {"kid": key_id} if key_id else None
    try:
        token = jwt.encode(payload, key, algorithm=alg, headers=headers)
    except (jwt.exceptions.PyJWTError, ValueError, TypeError) as exc:
        raise BundleError(f"cannot sign with {alg}: {exc}") from exc
    return (json.dumps({"signatures": [token]}, indent=2) + "\n").encode()


def verify(
    signatures: bytes | None,
    files: Mapping[str, bytes],
    public_key_pem: bytes,
    *,
    scope: str | None = None,
) -> dict[str, Any]:
    """Check `.signatures.json` against the bundle's files; return the JWT claims or raise."""
    if signatures is None:
        raise BundleError(f"bundle is not signed: no {SIGNATURES_FILE} (a public key is set)")
    token = _single_token(signatures)
    key = _public_key(public_key_pem)
    algorithms = _algorithms_for(key)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={"require": ["files"], "verify_aud": False, "verify_iat": False},
        )
    except jwt.exceptions.InvalidAlgorithmError as exc:
        raise BundleError(
            f"bundle signature uses an algorithm the public key does not allow: {exc}"
        ) from exc
    except jwt.exceptions.InvalidSignatureError as exc:
        raise BundleError("bundle signature does not verify with the configured key") from exc
    except jwt.exceptions.PyJWTError as exc:
        raise BundleError(f"bundle signature is invalid: {exc}") from exc
    if (claims.get("scope") or None) != (scope or None):
        raise BundleError(
            f"bundle signature scope {claims.get('scope')!r} is not the expected {scope!r}"
        )
    problems = _file_problems(claims.get("files"), files)
    if problems:
        listed = "; ".join(p["message"] for p in problems)
        raise BundleError(f"bundle files do not match their signature: {listed}", errors=problems)
    return claims


def _file_problems(listed: Any, files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    if not isinstance(listed, list) or not all(isinstance(f, dict) for f in listed):
        return [{"code": "signature_invalid", "message": "the `files` claim is not a list"}]
    signed = {str(f.get("name", "")).lstrip("/"): f for f in listed}
    problems: list[dict[str, Any]] = []
    for name in sorted(signed.keys() - files.keys()):
        problems.append(_problem("file_missing", f"{name} is signed but not in the bundle", name))
    for name in sorted(files.keys() - signed.keys()):
        problems.append(_problem("file_unsigned", f"{name} is not in the signature", name))
    for name in sorted(files.keys() & signed.keys()):
        entry = signed[name]
        if entry.get("algorithm") != HASH_ALGORITHM:
            message = f"{name}: hash algorithm {entry.get('algorithm')!r} is not {HASH_ALGORITHM}"
            problems.append(_problem("hash_algorithm", message, name))
        elif entry.get("hash") != file_hash(name, files[name]):
            problems.append(_problem("digest_mismatch", f"{name} was altered", name))
    return problems


def _problem(code: str, message: str, name: str) -> dict[str, Any]:
    return {"code": code, "message": message, "location": {"file": name}}


def _single_token(signatures: bytes) -> str:
    try:
        document = json.loads(signatures)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{SIGNATURES_FILE} is not valid JSON: {exc}") from exc
    tokens = document.get("signatures") if isinstance(document, dict) else None
    if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
        raise BundleError(f"{SIGNATURES_FILE} must hold exactly one JWT in `signatures`")
    return tokens[0]


def _public_key(
    pem: bytes,
) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"bundle public key is not a PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise BundleError("bundle public key must be RSA, EC or Ed25519")
    return key


def _algorithm_for(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_ALGORITHMS:
            raise BundleError(f"unsupported EC curve {key.curve.name}")
        return _EC_ALGORITHMS[key.curve.name]
    return "EdDSA"


def _algorithms_for(
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
) -> list[str]:
    # Only the algorithms of the key's own family: never HS* with a public key as the secret.
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return [_EC_ALGORITHMS[key.curve.name]] if key.curve.name in _EC_ALGORITHMS else []
    return ["EdDSA"]


def _walk(value: Any, h: Any) -> None:
    if isinstance(value, dict):
        h.update(b"{")
        for i, key in enumerate(sorted(value)):
            if i:
                h.update(b",")
            h.update(_primitive(key))
            h.update(b":")
            _walk(value[key], h)
        h.update(b"}")
    elif isinstance(value, list):
        h.update(b"[")
        for i, item in enumerate(value):
            if i:
                h.update(b",")
            _walk(item, h)
        h.update(b"]")
    else:
        h.update(_primitive(value))


def _primitive(value: Any) -> bytes:
    if isinstance(value, _Number):
        return str.__str__(value).encode()
    if isinstance(value, str):
        return _go_string(value).encode()
    return json.dumps(value).encode()


def _go_string(text: str) -> str:
    """A string as Go's encoder writes it with HTML escaping off (OPA hashes these bytes)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code < 0x20 or char in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
