"""`policy build` / `policy sign` and signature verification at load, on real files and keys."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient

from maestro_gate.api.app import create_app
from maestro_gate.authoring.build import build_tarball, sign_directory
from maestro_gate.cli import main
from maestro_gate.config import Settings
from maestro_gate.core.errors import BundleError
from maestro_gate.engine.bundle import read_bundle
from maestro_gate.engine.bundle_signatures import file_hash
from tests.conftest import POLICIES, action, write_bundle
from tests.conftest import make_settings as conftest_settings

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
KEY_MAKERS: dict[str, Callable[[], PrivateKey]] = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


def make_settings(tmp_path: Path, bundle: Path, **overrides: Any) -> Settings:
    """Settings for `bundle` on tmp_path, caller authentication off (not under test here)."""
    return conftest_settings(tmp_path, bundle, auth="off", **overrides)


def private_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PrivateKey) -> bytes:
    """The key's public half as SubjectPublicKeyInfo PEM."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    """One RSA key for the module (generation is the slow part)."""
    return KEY_MAKERS["RS256"]()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small bundle with a nested data.json and a test file."""
    bundle = write_bundle(tmp_path / "src", data={"limits": {"max": 3}})
    (bundle / "maestro" / "registry").mkdir(parents=True)
    (bundle / "maestro" / "registry" / "data.json").write_text('{"agents": {}}')
    (bundle / "maestro" / "decision" / "decision_test.rego").write_text(
        "package maestro.decision_test\n\nimport rego.v1\n\ntest_true if true\n"
    )
    (bundle / "README.md").write_text("not part of the bundle\n")
    return bundle


def members(tarball: Path) -> list[tarfile.TarInfo]:
    """The tarball's entries in stored order."""
    with tarfile.open(tarball, "r:gz") as tar:
        return tar.getmembers()


def test_building_twice_gives_identical_bytes(tmp_path: Path) -> None:
    """Two builds of the same tree (the real policies, mtimes changed between) are byte-equal."""
    tree = shutil.copytree(POLICIES, tmp_path / "policies")
    first = build_tarball(tree, tmp_path / "a.tar.gz", revision="r1")
    for path in tree.rglob("*"):
        path.touch()
    second = build_tarball(tree, tmp_path / "b.tar.gz", revision="r1")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.digest == second.digest


def test_signed_rs256_builds_are_identical_too(
    tmp_path: Path, source: Path, rsa_key: PrivateKey
) -> None:
    """RS256 signatures are deterministic, so a signed build is reproducible as well."""
    key = private_pem(rsa_key)
    one = build_tarball(source, tmp_path / "a.tar.gz", signing_key=key, key_id="ci")
    two = build_tarball(source, tmp_path / "b.tar.gz", signing_key=key, key_id="ci")
    assert one.path.read_bytes() == two.path.read_bytes()


def test_tarball_layout_is_opa_bundle_layout(tmp_path: Path, source: Path) -> None:
    """Sorted entries: .manifest, data.json files and every .rego, normalised metadata."""
    result = build_tarball(source, tmp_path / "bundle.tar.gz", revision="2026.11.21-1")
    entries = members(result.path)
    assert [m.name for m in entries] == [
        ".manifest",
        "data.json",
        "maestro/decision/decision.rego",
        "maestro/decision/decision_test.rego",
        "maestro/registry/data.json",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in entries} == {
        (0, 0, 0, "", "", 0o644)
    }
    raw = result.path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[4:8] == b"\x00\x00\x00\x00"
    with tarfile.open(result.path, "r:gz") as tar:
        manifest_file = tar.extractfile(".manifest")
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
    assert manifest == {"revision": "2026.11.21-1", "roots": ["maestro"]}
    assert not result.signed


def test_tarball_loads_with_the_directory_digest(tmp_path: Path, source: Path) -> None:
    """Read back, the tarball is the same bundle as the directory: same modules, data, digest."""
    directory = read_bundle(source)
    tarball = read_bundle(build_tarball(source, tmp_path / "b.tar.gz").path)
    assert tarball.digest == directory.digest
    assert tarball.modules == directory.modules
    assert tarball.tests == directory.tests
    assert (
        tarball.data
        == directory.data
        == {
            "limits": {"max": 3},
            "maestro": {"registry": {"agents": {}}},
        }
    )


@pytest.mark.parametrize("alg", sorted(KEY_MAKERS))
def test_signature_round_trip(tmp_path: Path, source: Path, alg: str) -> None:
    """A signed tarball carries OPA's JWT: files with SHA-256 hashes, kid, keyid, scope."""
    key = KEY_MAKERS[alg]()
    result = build_tarball(
        source, tmp_path / "b.tar.gz", signing_key=private_pem(key), key_id="release", scope="write"
    )
    assert result.signed
    assert ".signatures.json" in [m.name for m in members(result.path)]
    bundle = read_bundle(result.path, public_key=public_pem(key), scope="write")
    assert bundle.revision == "test-1"
    with tarfile.open(result.path, "r:gz") as tar:
        signatures_file = tar.extractfile(".signatures.json")
        assert signatures_file is not None
        (token,) = json.loads(signatures_file.read())["signatures"]
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == (alg, "release")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["keyid"] == "release"
    assert claims["scope"] == "write"
    assert [f["name"] for f in claims["files"]] == [
        ".manifest",
        "data.json",
        "maestro/decision/decision.rego",
        "maestro/decision/decision_test.rego",
        "maestro/registry/data.json",
    ]
    rego = (source / "maestro/decision/decision.rego").read_bytes()
    assert {
        "name": "maestro/decision/decision.rego",
        "hash": hashlib.sha256(rego).hexdigest(),
        "algorithm": "SHA-256",
    } in claims["files"]


def test_json_files_are_hashed_over_sorted_compact_json() -> None:
    """.manifest and data.json hash as OPA does: parsed, keys sorted, whitespace ignored."""
    pretty = b'{\n  "roots": ["maestro"],\n  "revision": "r1", "n": 1.50, "s": "a<b\xc3\xa9"\n}'
    compact = '{"n":1.50,"revision":"r1","roots":["maestro"],"s":"a<b\u00e9"}'.encode()
    assert file_hash(".manifest", pretty) == hashlib.sha256(compact).hexdigest()
    assert file_hash("x/data.json", pretty) == file_hash("x/data.json", compact)
    assert file_hash("x/other.json", pretty) == hashlib.sha256(pretty).hexdigest()


def signed_dir(source: Path, key: PrivateKey) -> Path:
    """`source` with a `.signatures.json` written by `policy sign`."""
    sign_directory(source, private_pem(key))
    return source


def tampered(kind: str, bundle: Path) -> None:
    """Change a signed directory bundle in one of the ways verification must catch."""
    rego = bundle / "maestro/decision/decision.rego"
    if kind == "altered":
        rego.write_text(rego.read_text().replace("shell.exec", "shell.exec2"))
    elif kind == "added":
        (bundle / "maestro/decision/extra.rego").write_text("package maestro.extra\n\nx := 1\n")
    elif kind == "removed":
        (bundle / "maestro/registry/data.json").unlink()
    elif kind == "manifest":
        (bundle / ".manifest").write_text('{"revision": "evil", "roots": ["maestro"]}')


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("altered", "maestro/decision/decision.rego was altered"),
        ("added", "maestro/decision/extra.rego is not in the signature"),
        ("removed", "maestro/registry/data.json is signed but not in the bundle"),
        ("manifest", ".manifest was altered"),
    ],
)
def test_tampered_directory_bundle_is_refused(
    source: Path, rsa_key: PrivateKey, kind: str, message: str
) -> None:
    """An altered, added or removed file (manifest included) fails verification, named."""
    bundle = signed_dir(source, rsa_key)
    read_bundle(bundle, public_key=public_pem(rsa_key))
    tampered(kind, bundle)
    with pytest.raises(BundleError, match="do not match their signature") as caught:
        read_bundle(bundle, public_key=public_pem(rsa_key))
    assert message in caught.value.message
    assert [e["location"]["file"] for e in caught.value.errors] == [message.split(" ")[0]]


def test_whitespace_only_change_to_data_json_still_verifies(
    source: Path, rsa_key: PrivateKey
) -> None:
    """Structured files are hashed over their content, so reformatting is not tampering."""
    bundle = signed_dir(source, rsa_key)
    (bundle / "data.json").write_text('{\n  "limits": { "max": 3 }\n}\n')
    read_bundle(bundle, public_key=public_pem(rsa_key))


def test_tampered_tarball_is_refused(tmp_path: Path, source: Path, rsa_key: PrivateKey) -> None:
    """A tarball rebuilt with a changed module under the old signature is refused."""
    built = build_tarball(source, tmp_path / "b.tar.gz", signing_key=private_pem(rsa_key))
    with tarfile.open(built.path, "r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    files["maestro/decision/decision.rego"] += b"\nbackdoor := true\n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(out.getvalue())
    with pytest.raises(BundleError, match=r"decision\.rego was altered"):
        read_bundle(evil, public_key=public_pem(rsa_key))


@pytest.mark.parametrize("packaging", ["directory", "tarball"])
def test_unsigned_bundle_is_refused_when_a_key_is_set(
    tmp_path: Path, source: Path, rsa_key: PrivateKey, packaging: str
) -> None:
    """With a public key configured, a bundle without .signatures.json does not load."""
    bundle = source if packaging == "directory" else build_tarball(source, tmp_path / "b.tgz").path
    with pytest.raises(BundleError, match=r"bundle is not signed: no \.signatures\.json"):
        read_bundle(bundle, public_key=public_pem(rsa_key))


def test_wrong_key_and_wrong_scope_are_refused(
    tmp_path: Path, source: Path, rsa_key: PrivateKey
) -> None:
    """A signature by another key, or with another scope, does not verify."""
    built = build_tarball(source, tmp_path / "b.tar.gz", signing_key=private_pem(rsa_key))
    other = KEY_MAKERS["RS256"]()
    with pytest.raises(BundleError, match="does not verify with the configured key"):
        read_bundle(built.path, public_key=public_pem(other))
    with pytest.raises(BundleError, match="algorithm the public key does not allow"):
        read_bundle(built.path, public_key=public_pem(KEY_MAKERS["EdDSA"]()))
    with pytest.raises(BundleError, match="scope None is not the expected 'write'"):
        read_bundle(built.path, public_key=public_pem(rsa_key), scope="write")


def test_service_refuses_unsigned_and_serves_signed_tarball(
    tmp_path: Path, source: Path, rsa_key: PrivateKey
) -> None:
    """The service loads a signed .tar.gz and refuses an unsigned one, saying why in /v1/status."""
    key_file = tmp_path / "bundle.pub"
    key_file.write_bytes(public_pem(rsa_key))
    unsigned = build_tarball(source, tmp_path / "unsigned.tar.gz").path
    settings = make_settings(tmp_path, unsigned, bundle_public_key_file=key_file)
    with TestClient(create_app(settings)) as client:
        status = client.get("/v1/status").json()
        assert status["bundle"] is None
        assert "bundle is not signed" in status["last_reload_error"]
        assert client.get("/ready").status_code == 503
    signed = build_tarball(
        source, tmp_path / "signed.tar.gz", revision="1.0.0", signing_key=private_pem(rsa_key)
    ).path
    settings = make_settings(tmp_path, signed, bundle_public_key_file=key_file)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/status").json()["bundle"]["revision"] == "1.0.0"
        decision = client.post("/v1/decide", json=action()).json()
        assert decision["decision"] == "allow"
        assert decision["policy"]["revision"] == "1.0.0"


def test_cli_build_and_sign(
    tmp_path: Path, source: Path, rsa_key: PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy build` writes a verifiable tarball; `policy sign` a verifiable directory."""
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(private_pem(rsa_key))
    out = tmp_path / "dist" / "bundle.tar.gz"
    argv = ["policy", "build", str(source), "--out", str(out), "--revision", "r9"]
    assert main([*argv, "--signing-key", str(key_file), "--key-id", "ci"]) == 0
    assert f"wrote {out}: revision r9, 6 files, signed" in capsys.readouterr().out
    assert read_bundle(out, public_key=public_pem(rsa_key)).revision == "r9"
    assert main(["policy", "sign", str(source), "--signing-key", str(key_file)]) == 0
    assert read_bundle(source, public_key=public_pem(rsa_key)).revision == "test-1"


def test_cli_build_reports_a_bad_bundle(
    tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle that cannot be read is not written, and the CLI says why and exits 1."""
    (source / "data.json").write_text("{not json")
    out = tmp_path / "bundle.tar.gz"
    assert main(["policy", "build", str(source), "--out", str(out)]) == 1
    assert "data.json is not valid JSON" in capsys.readouterr().err
    assert not out.exists()
